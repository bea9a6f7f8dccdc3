"""Correcting for the rollout engine: vLLM samples with its own kernels, so the probability it gave a
sampled response differs slightly from the trainer's. As TRL's GRPOTrainer (`vllm_importance_sampling_correction`,
its default mode `sequence_mask`), each response's policy loss is weighted by the ratio of the two
probabilities, exp(sum over its tokens of trainer log-prob - engine log-prob), and a response whose ratio
exceeds the cap is left out of the policy loss (weight 0): its sample says more about the engine's error
than about the policy.
"""

import torch

from components.tune_policy.ppo_math import masked_mean


def engine_importance_weights(trainer_log_probs: torch.Tensor, engine_log_probs: torch.Tensor,
                              response_mask: torch.Tensor, cap: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Per response (B,), the weight of its policy loss, and the ratio's mean, min and max and the share of
    responses masked (logged). `cap` 0 turns the correction off (every weight 1); the ratio is still logged."""
    mask = response_mask.to(trainer_log_probs.dtype)
    gap = trainer_log_probs - engine_log_probs
    ratio = torch.exp((gap * mask).sum(dim=1))
    masked = ratio > cap if cap > 0 else torch.zeros_like(ratio, dtype=torch.bool)
    weights = ratio.masked_fill(masked, 0.0) if cap > 0 else torch.ones_like(ratio)
    statistics = {
        "importance_sampling_ratio/mean": float(ratio.mean()),
        "importance_sampling_ratio/min": float(ratio.min()),
        "importance_sampling_ratio/max": float(ratio.max()),
        "importance_sampling_ratio/masked_fraction": float(masked.float().mean()),
        "engine_log_prob_gap": float(masked_mean(gap.abs(), mask)),
    }
    return weights, statistics
