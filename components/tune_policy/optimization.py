"""The optimizer of the policy and value head, and its learning-rate schedule."""

import torch

from components.tune_policy.config import PolicyTuningConfig
from components.tune_policy.policy_model import PolicyWithValueHead


def learning_rate_factor(optimizer_step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at `optimizer_step` (0-based).

    Warmup rises linearly to 1 over `warmup_steps` (never 0, so the first step learns); then
    "constant" stays at 1 and "linear" decays towards 0 at `total_steps`.
    """
    if optimizer_step < warmup_steps:
        return (optimizer_step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        remaining = total_steps - optimizer_step
        return max(0.0, remaining / max(1, total_steps - warmup_steps))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def trainable_parameters(policy: PolicyWithValueHead) -> list[torch.nn.Parameter]:
    return [p for p in policy.parameters() if p.requires_grad]


def build_optimizer(
    policy: PolicyWithValueHead, config: PolicyTuningConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable weights; the fresh value head (PPO's only) learns
    `value_head_learning_rate_scale` faster."""
    head = list(policy.value_head.parameters()) if policy.value_head is not None else []
    head_ids = {id(p) for p in head}
    trunk = [p for p in trainable_parameters(policy) if id(p) not in head_ids]
    groups = [{"params": trunk, "lr": config.learning_rate}]
    if head:
        groups.append({"params": head, "lr": config.learning_rate * config.value_head_learning_rate_scale})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    total = config.optimizer_steps
    warmup = int(config.warmup_fraction * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total, warmup, config.lr_schedule)
    )
    return optimizer, scheduler
