"""The arithmetic of PPO on token sequences: shaped rewards, GAE, the clipped value loss, and the clipped
ratio loss that GRPO and RLOO share with it.

Every tensor here is (batch, response_length) over response tokens. `mask` is 1 for a real response
token (up to and including its first EOS) and 0 for the padding after it; masks are prefixes, so a
row's last real token is at index `mask.sum(1) - 1`. All functions are pure and run on any device.
"""

from collections.abc import Callable

import torch


# Sums a tensor over every training process (TrainingProcesses.total); the identity when alone.
Total = Callable[[torch.Tensor], torch.Tensor]


def _alone(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def masked_mean(values: torch.Tensor, mask: torch.Tensor, total: Total = _alone) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` is 1 (in every process's rows, via `total`)."""
    mask = mask.to(values.dtype)
    sums = total(torch.stack([(values * mask).sum(), mask.sum()]))
    return sums[0] / sums[1].clamp(min=1)


def masked_moments(values: torch.Tensor, mask: torch.Tensor, total: Total = _alone) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of `values` over the positions where `mask` is 1 (every process's, via `total`)."""
    mean = masked_mean(values, mask, total)
    return mean, masked_mean((values - mean) ** 2, mask, total)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, total: Total = _alone) -> torch.Tensor:
    """Zero mean, unit variance over the masked positions; masked-out positions become 0.

    With several training processes `total` makes the statistics those of the whole batch.
    """
    mean, variance = masked_moments(values, mask, total)
    return (values - mean) * torch.rsqrt(variance + 1e-8) * mask.to(values.dtype)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real response token."""
    return (mask.sum(dim=1) - 1).clamp(min=0).long()


def kl_shaped_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    mask: torch.Tensor,
    kl_coeff: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: ``-kl_coeff * (logp - logp_ref)`` on every token, plus the score on the last.

    Returns (rewards, kl) where kl is the per-token estimate ``logp - logp_ref`` (zeros without a
    reference policy). Both are 0 after each row's last token.
    """
    mask = mask.to(logprobs.dtype)
    if ref_logprobs is None:
        kl = torch.zeros_like(logprobs)
    else:
        kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coeff * kl
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards, kl


def generalized_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, gae_lambda: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and the returns (advantages + values) the value head regresses to.

    The episode ends at each row's last real token: nothing is bootstrapped after it. A response
    cut at the length cap also ends there, because the tuned model is served with the same cap.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    length = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(range(length)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * gae_lambda * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


def clipped_ratio_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, epsilon: float, epsilon_high: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token ``max(-A r, -A clip(r, 1 - epsilon, 1 + epsilon_high))`` with r = exp(logp - logp_old).

    Returns (loss, low, high): `low` is True where a negative advantage met r < 1 - epsilon, `high` where a
    positive one met r > 1 + epsilon_high (there the clipped constant wins and no gradient flows)."""
    ratio = torch.exp(logprobs - old_logprobs)
    low_bound, high_bound = 1.0 - epsilon, 1.0 + epsilon_high
    loss = torch.maximum(-advantages * ratio, -advantages * torch.clamp(ratio, low_bound, high_bound))
    return loss, (ratio < low_bound) & (advantages < 0), (ratio > high_bound) & (advantages > 0)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token value loss ``0.5 * max((V - R)^2, (V_clipped - R)^2)`` with V kept near the old V.

    Returns (loss, clipped): `clipped` is 1.0 where the clipped error was the larger one.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    return 0.5 * torch.maximum(unclipped_error, clipped_error), (clipped_error > unclipped_error).float()
