"""The PPO update: `ppo_epochs` passes of clipped policy and value losses over one rollout."""

from collections import defaultdict

import torch

from components.common.log_probs import token_log_probs
from components.tune_policy.config import PPOConfig
from components.tune_policy.optimization import trainable_parameters
from components.tune_policy.policy_model import PolicyWithValueHead
from components.tune_policy.ppo_math import (
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
)
from components.tune_policy.rollout import Rollout, trim_left_padding


def ppo_update(
    policy: PolicyWithValueHead,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rollout: Rollout,
    config: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Optimise on `rollout` and return token-averaged statistics of the pass.

    Each minibatch's loss is the mean over its real response tokens; it is accumulated over
    forward chunks of `forward_batch_size` rows, so chunking changes memory, not gradients.
    """
    parameters = trainable_parameters(policy)
    response_length = rollout.response_ids.shape[1]
    totals: dict[str, float] = defaultdict(float)
    grad_norms = []
    for _ in range(config.ppo_epochs):
        order = torch.randperm(rollout.size, generator=generator)
        for minibatch in order.split(config.minibatch_size):
            minibatch = minibatch.to(rollout.response_mask.device)
            token_count = rollout.response_mask[minibatch].sum().clamp(min=1)
            optimizer.zero_grad(set_to_none=True)
            for rows in minibatch.split(config.forward_batch_size):
                ids, attention = trim_left_padding(rollout.input_ids[rows], rollout.attention_mask[rows])
                logits, values = policy(ids, attention, response_length)
                logits = logits / config.temperature
                logprobs = token_log_probs(logits, rollout.response_ids[rows])
                mask = rollout.response_mask[rows].float()
                policy_loss, policy_clipped = clipped_policy_loss(
                    logprobs, rollout.logprobs[rows], rollout.advantages[rows], config.clip_range
                )
                value_loss, value_clipped = clipped_value_loss(
                    values, rollout.values[rows], rollout.returns[rows], config.value_clip_range
                )
                loss = ((policy_loss + config.value_loss_coeff * value_loss) * mask).sum() / token_count
                loss.backward()
                with torch.no_grad():
                    log_ratio = logprobs - rollout.logprobs[rows]
                    for name, per_token in (
                        ("rl_loss", policy_loss),
                        ("value_loss", value_loss),
                        ("clip_fraction", policy_clipped),
                        ("value_clip_fraction", value_clipped),
                        ("entropy", entropy_from_logits(logits)),
                        ("approx_kl", 0.5 * log_ratio**2),
                    ):
                        totals[name] += float((per_token * mask).sum())
                    totals["tokens"] += float(mask.sum())
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)))
            optimizer.step()
            scheduler.step()
    tokens = max(totals.pop("tokens"), 1.0)
    stats = {name: total / tokens for name, total in totals.items()}
    stats["grad_norm"] = sum(grad_norms) / len(grad_norms)
    return stats
