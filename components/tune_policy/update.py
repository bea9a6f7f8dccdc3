"""The update: `epochs` passes (the `ppo_epochs` parameter, TRL's num_iterations) over one rollout, in
minibatches, each an optimizer step.

All three clip the probability ratio to [1 - epsilon, 1 + epsilon_high] (epsilon_high 0: epsilon). PPO
minimises that clipped policy loss plus the clipped value loss, averaged over real tokens; GRPO and RLOO
the clipped policy loss (plus, for GRPO, `kl_coeff` times the k3 KL to the reference), as `loss_type`
says (RLOO's default, `sequence`, takes one ratio per response). Minibatching, chunked forwards,
gradient clipping, the schedule and the sharing between processes (DDP or FSDP) are the same for all three.
"""

import contextlib

import torch

from components.common.distributed import TrainingProcesses, gradient_sync_deferred
from components.common.generation import trim_left_padding
from components.common.log_probs import token_log_probs
from components.common.sharding import full_tensor
from components.tune_policy.config import SEQUENCE, PolicyTuningConfig
from components.tune_policy.optimization import trainable_parameters
from components.tune_policy.policy_model import PolicyWithValueHead
from components.tune_policy.group_math import aggregated_loss, k3_kl
from components.tune_policy.ppo_math import clipped_ratio_loss, clipped_value_loss
from components.tune_policy.rollout import Rollout


# The policy's entropy is a rollout statistic (rollout.policy_logprobs_and_values), which the update records
# only where it settles the rollout's log-probs (Rollout.settle_log_probs).
STATISTICS = ("rl_loss", "value_loss", "clip_fraction", "value_clip_fraction", "approx_kl", "tokens")
# GRPO and RLOO: no value loss; `kl_penalty` is GRPO's k3 KL term (0 for RLOO, whose KL is in the reward).
GROUP_STATISTICS = ("rl_loss", "kl_penalty", "clip_fraction", "clip_fraction_low", "clip_fraction_high",
                    "approx_kl", "tokens")


def _minibatch_normaliser(config: PolicyTuningConfig, token_count: torch.Tensor, rows: int) -> torch.Tensor | float:
    """What a minibatch's loss sum is divided by: PPO's and dapo's token count; grpo's and sequence's rows;
    dr_grpo's rows times max_new_tokens (see group_math.aggregated_loss). Token count and `rows` are every
    process's."""
    if not config.grouped or config.loss == "dapo":
        return token_count
    if config.loss in ("grpo", SEQUENCE):
        return float(rows)
    return float(rows * config.max_new_tokens)


def update_policy(
    policy: PolicyWithValueHead | torch.nn.parallel.DistributedDataParallel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rollout: Rollout,
    config: PolicyTuningConfig,
    generator: torch.Generator,
    processes: TrainingProcesses = TrainingProcesses(),
) -> dict[str, float]:
    """Optimise on `rollout` and return token-averaged statistics of the pass (PPO, GRPO or RLOO:
    `config.algorithm`).

    Each minibatch's loss is the mean over its real response tokens (GRPO/RLOO: averaged as
    `loss_type` says); it is accumulated over forward chunks of `forward_batch_size` rows, so
    chunking changes memory, not gradients.

    With several processes (`policy` wrapped by `processes.data_parallel`) each holds its share of
    the batch and takes the same share of every minibatch. Each scales its loss sum by the whole
    minibatch's normaliser times the process count, so DDP's averaged gradient is exactly the
    gradient of the whole minibatch's loss, as one process would compute it.
    """
    if config.grouped:
        return _passes(policy, optimizer, scheduler, rollout, config, generator, processes, GROUP_STATISTICS,
                       _group_chunk_loss)
    return _passes(policy, optimizer, scheduler, rollout, config, generator, processes, STATISTICS, _ppo_chunk_loss)


def _engine_weighted(policy_loss: torch.Tensor, rollout: Rollout, rows) -> torch.Tensor:
    """The policy loss (per token (B, R) or per response (B,)) weighted by each response's importance
    weight where vLLM sampled the rollout (importance_sampling.py); as it is otherwise."""
    if rollout.importance_weights is None:
        return policy_loss
    weights = rollout.importance_weights[rows]
    return policy_loss * (weights[:, None] if policy_loss.dim() == 2 else weights)


def _ppo_chunk_loss(rollout: Rollout, rows, logprobs, values, mask, config: PolicyTuningConfig):
    """PPO: the clipped policy loss plus the clipped value loss; (loss sum, per-token statistics)."""
    policy_loss, low_clipped, high_clipped = clipped_ratio_loss(
        logprobs, rollout.logprobs[rows], rollout.advantages[rows], config.epsilon, config.clip_high
    )
    policy_loss = _engine_weighted(policy_loss, rollout, rows)
    value_loss, value_clipped = clipped_value_loss(
        values, rollout.values[rows], rollout.returns[rows], config.value_clip_range
    )
    token_losses = (policy_loss + config.value_loss_coeff * value_loss) * mask
    return token_losses.sum(), (policy_loss, value_loss, low_clipped | high_clipped, value_clipped)


def _group_chunk_loss(rollout: Rollout, rows, logprobs, values, mask, config: PolicyTuningConfig):
    """GRPO/RLOO: the ratio clipped to [1 - epsilon, 1 + epsilon_high], plus GRPO's k3 KL term,
    averaged as `loss_type` says; (loss sum, per-token statistics). No value head."""
    if config.loss == SEQUENCE:
        return _sequence_chunk_loss(rollout, rows, logprobs, mask, config)
    policy_loss, low_clipped, high_clipped = clipped_ratio_loss(
        logprobs, rollout.logprobs[rows], rollout.advantages[rows], config.epsilon, config.clip_high
    )
    policy_loss = _engine_weighted(policy_loss, rollout, rows)
    kl_penalty = torch.zeros_like(policy_loss)
    if config.algorithm == "grpo" and rollout.ref_logprobs is not None and config.kl_coeff > 0:
        kl_penalty = k3_kl(logprobs, rollout.ref_logprobs[rows])
    token_losses = policy_loss + config.kl_coeff * kl_penalty
    loss = aggregated_loss(token_losses, mask, config.loss, 1.0)
    return loss, (policy_loss, kl_penalty, low_clipped | high_clipped, low_clipped, high_clipped)


def _sequence_chunk_loss(rollout: Rollout, rows, logprobs, mask, config: PolicyTuningConfig):
    """RLOO as TRL's RLOOTrainer computes it: one ratio per response, from the log-probabilities summed
    over its tokens, clipped to [1 - epsilon, 1 + epsilon_high]; the loss is the mean over responses.
    (loss sum, per-token statistics: each response's values on its tokens)."""
    sequence_logprobs = (logprobs * mask).sum(dim=1)
    old_sequence_logprobs = (rollout.logprobs[rows] * mask).sum(dim=1)
    advantages = rollout.advantages[rows][:, 0]  # a response's advantage is the same on every token
    loss, low_clipped, high_clipped = clipped_ratio_loss(
        sequence_logprobs, old_sequence_logprobs, advantages, config.epsilon, config.clip_high
    )
    loss = _engine_weighted(loss, rollout, rows)
    on_tokens = lambda per_response: per_response[:, None].expand_as(mask)  # noqa: E731
    no_kl_term = torch.zeros_like(mask)  # RLOO's KL is in the reward
    return loss.sum(), (on_tokens(loss), no_kl_term, on_tokens(low_clipped | high_clipped), on_tokens(low_clipped),
                        on_tokens(high_clipped))


def _passes(policy, optimizer, scheduler, rollout: Rollout, config: PolicyTuningConfig, generator: torch.Generator,
            processes: TrainingProcesses, statistics: tuple[str, ...], chunk_loss) -> dict[str, float]:
    """`epochs` passes over `rollout` in minibatches, each an optimizer step; `chunk_loss` is the
    algorithm's loss of one forward chunk. Returns the token-averaged `statistics`."""
    parameters = trainable_parameters(policy)
    response_length = rollout.response_ids.shape[1]
    minibatch_size = config.minibatch_size // processes.count
    device = rollout.response_mask.device
    totals = torch.zeros(len(statistics), dtype=torch.float64, device=device)
    grad_norms = []
    for _ in range(config.epochs):
        order = torch.randperm(rollout.size, generator=generator)
        for minibatch in order.split(minibatch_size):
            minibatch = minibatch.to(device)
            token_count = processes.total(rollout.response_mask[minibatch].sum().float()).clamp(min=1)
            normaliser = _minibatch_normaliser(config, token_count, len(minibatch) * processes.count)
            optimizer.zero_grad(set_to_none=True)
            chunks = minibatch.split(config.forward_batch_size)
            for index, rows in enumerate(chunks):
                # DDP averages the gradients once, at the minibatch's last backward
                is_last = index == len(chunks) - 1
                synchronising = contextlib.nullcontext() if is_last else gradient_sync_deferred(policy)
                ids, attention = trim_left_padding(rollout.input_ids[rows], rollout.attention_mask[rows])
                with synchronising:
                    logits, values = policy(ids, attention, response_length)
                    logprobs = token_log_probs(logits, rollout.response_ids[rows], config.temperature)
                    if rollout.log_probs_from_update:
                        rollout.settle_log_probs(rows, logprobs, logits, config)
                    mask = rollout.response_mask[rows].float()
                    loss_sum, per_token = chunk_loss(rollout, rows, logprobs, values, mask, config)
                    loss = loss_sum * processes.count / normaliser
                    loss.backward()
                with torch.no_grad():
                    log_ratio = logprobs - rollout.logprobs[rows]
                    per_token = (*per_token, 0.5 * log_ratio**2, torch.ones_like(mask))
                    totals += torch.stack([(value.float() * mask).sum() for value in per_token]).double()
            grad_norms.append(float(full_tensor(torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm))))
            optimizer.step()
            scheduler.step()
    if rollout.log_probs_from_update:
        rollout.finish_log_probs(config)
    totals = processes.total(totals).cpu()  # read back from the device once, after the update
    tokens = max(float(totals[-1]), 1.0)
    stats = {name: float(value) / tokens for name, value in zip(statistics[:-1], totals[:-1])}
    stats["grad_norm"] = sum(grad_norms) / len(grad_norms)
    return stats
