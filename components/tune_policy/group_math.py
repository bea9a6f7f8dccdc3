"""The arithmetic of GRPO and RLOO: sequence-level advantages from groups of responses, and their loss.

Rewards are (N,) with the `num_generations` responses of one prompt next to each other (rows
g*k .. g*k+k-1 form group g). A NaN reward means "no reward" (a reward function returned None): it is
left out of every mean and standard deviation, and its response gets advantage 0, as in TRL 1.16.
Token tensors are (batch, response_length) with `mask` 1 on real response tokens, as in ppo_math.
"""

import torch

from components.common.errors import UserInputError
from components.tune_policy.ppo_math import Total, _alone

STD_EPSILON = 1e-4  # added to the standard deviation a GRPO advantage is divided by (TRL's value)


def nan_std(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Standard deviation with Bessel's correction over the non-NaN values; NaN with fewer than two."""
    if dim is None:
        values, dim = values.reshape(-1), 0
    present = ~torch.isnan(values)
    count = present.sum(dim=dim, keepdim=True)
    mean = torch.nanmean(values, dim=dim, keepdim=True)
    squares = torch.where(present, (values - mean) ** 2, torch.zeros_like(values)).sum(dim=dim, keepdim=True)
    variance = squares / (count - 1).clamp(min=1)
    variance = torch.where(count > 1, variance, torch.full_like(variance, float("nan")))
    return variance.sqrt().squeeze(dim)


def _groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    if rewards.dim() != 1 or rewards.numel() % num_generations:
        raise ValueError(f"{tuple(rewards.shape)} rewards do not form groups of {num_generations}")
    return rewards.view(-1, num_generations)


def check_some_rewarded(rewards: torch.Tensor, total: Total = _alone) -> None:
    """One clear error when no response of the whole batch (every process's) got a reward."""
    rewarded = total(torch.stack([(~torch.isnan(rewards)).sum().float(), torch.tensor(float(rewards.numel()), device=rewards.device)]))
    if rewarded[0] == 0:
        raise UserInputError(
            f"no response of this step's {int(rewarded[1])} got a reward: the reward function returned None "
            "(not applicable) for every one; check that the prompt rows carry the columns it needs"
        )


def group_advantages(
    rewards: torch.Tensor, num_generations: int, scale_rewards: str = "group", total: Total = _alone
) -> torch.Tensor:
    """GRPO's advantages: each reward minus its group's mean, divided by the group's standard deviation
    ("group"), the whole batch's ("batch"; every process's rewards, via `total`) or nothing ("none"),
    plus STD_EPSILON. NaN rewards are left out of the statistics and get advantage 0."""
    grouped = _groups(rewards, num_generations)
    centred = grouped - torch.nanmean(grouped, dim=1, keepdim=True)
    if scale_rewards == "group":
        centred = centred / (nan_std(grouped, dim=1).unsqueeze(1) + STD_EPSILON)
    elif scale_rewards == "batch":
        present = ~torch.isnan(rewards)
        zero = torch.zeros_like(rewards)
        sums = total(torch.stack([present.sum().to(rewards.dtype), torch.where(present, rewards, zero).sum()]))
        mean = sums[1] / sums[0]
        squares = total(torch.where(present, (rewards - mean) ** 2, zero).sum())
        std = (squares / (sums[0] - 1).clamp(min=1)).sqrt() if sums[0] > 1 else torch.zeros_like(mean)
        centred = centred / (std + STD_EPSILON)
    elif scale_rewards != "none":
        raise ValueError(f"unknown scale_rewards {scale_rewards!r}")
    return torch.nan_to_num(centred.reshape(-1), nan=0.0)


def leave_one_out_advantages(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """RLOO's advantages: each reward minus the mean of the other rewarded responses of its group.

    NaN rewards count in no baseline and get advantage 0; so does a response that is its group's only
    rewarded one (it has no baseline)."""
    grouped = _groups(rewards, num_generations)
    present = ~torch.isnan(grouped)
    count = present.sum(dim=1, keepdim=True)
    group_sum = torch.nansum(grouped, dim=1, keepdim=True)
    baseline = (group_sum - grouped) / (count - 1)
    return torch.nan_to_num(grouped - baseline, nan=0.0, posinf=0.0, neginf=0.0).reshape(-1)


def group_reward_statistics(rewards: torch.Tensor, num_generations: int) -> dict[str, float]:
    """What the groups say: the mean standard deviation within them, the share of groups whose rewards
    are all equal (those teach GRPO nothing; TRL logs it as `frac_reward_zero_std`), the share of
    responses that got no reward, and the share of rewarded responses whose reward is 0."""
    grouped = _groups(rewards, num_generations)
    stds = nan_std(grouped, dim=1)
    flat = torch.nan_to_num(stds, nan=0.0)
    rewarded = rewards[~torch.isnan(rewards)]
    return {
        "reward_std_within_groups": float(flat.mean()) if len(flat) else 0.0,
        "groups_with_equal_rewards": float((flat < 1e-8).float().mean()) if len(flat) else 0.0,
        "unrewarded_fraction": float(torch.isnan(rewards).float().mean()) if rewards.numel() else 0.0,
        "zero_reward_fraction": float((rewarded == 0).float().mean()) if rewarded.numel() else 0.0,
    }


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate ``exp(ref - logp) - (ref - logp) - 1`` (never negative): GRPO's KL loss term."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def aggregated_loss(
    token_losses: torch.Tensor, mask: torch.Tensor, loss_type: str, normaliser: float
) -> torch.Tensor:
    """The sum this process contributes to the minibatch loss, before dividing by `normaliser`.

    - "dapo": every real token of the minibatch weighs the same: sum / (minibatch tokens).
    - "grpo": each response's token mean, then the mean over responses: sum of row means / (minibatch rows).
    - "dr_grpo": sum / (minibatch rows * max_new_tokens), a constant, so no length bias.
    The caller passes the matching `normaliser` (times the process count under DDP, which averages).
    """
    masked = token_losses * mask
    if loss_type == "grpo":
        return (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).sum() / normaliser
    if loss_type in ("dapo", "dr_grpo"):
        return masked.sum() / normaliser
    raise ValueError(f"unknown loss_type {loss_type!r}")
