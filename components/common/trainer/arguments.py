"""The Trainer arguments every stage trained with a TRL trainer shares (reward model, SFT, DPO/KTO).

A stage's config supplies micro_batch_size(processes), gradient_accumulation_steps(processes),
learning_rate, warmup_ratio, weight_decay, logging_steps, seed and sharding (and lora_rank where it
trains adapters); the stage adds its own arguments (its loss, its length limits) to these.
"""

import math
from pathlib import Path

import torch

from components.common.distributed import TrainingProcesses
from components.common.models import Placement
from components.common.trainer.checkpoints import CHECKPOINTS_KEPT
from components.common.trainer.sharding import fsdp_arguments, shards


def training_arguments(config, steps: int, trainer_dir: str | Path, placement: Placement,
                       processes: TrainingProcesses, checkpoint_steps: int, model) -> dict:
    """Keyword arguments of a TRL config: `steps` optimizer steps at the config's batch size, split in
    micro batches over `processes`, a linear schedule with warm-up, no reporting to a tracker, a
    checkpoint in `trainer_dir` every `checkpoint_steps` steps (0: none), and `model` (as loaded)
    sharded with FSDP2 where `config.sharding` says so (components/common/trainer/sharding.py)."""
    sharding = {}
    if shards(config.sharding, model, getattr(config, "lora_rank", 0), processes, placement):
        sharding = fsdp_arguments(model)
        if processes.is_main:
            print(f"FSDP: the model is sharded between {processes.count} processes", flush=True)
    saving = {"save_strategy": "no"}
    if checkpoint_steps:
        saving = {"save_strategy": "steps", "save_steps": checkpoint_steps, "save_total_limit": CHECKPOINTS_KEPT}
    return dict(
        output_dir=str(trainer_dir),
        max_steps=steps,
        per_device_train_batch_size=config.micro_batch_size(processes.count),
        gradient_accumulation_steps=config.gradient_accumulation_steps(processes.count),
        learning_rate=config.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=math.ceil(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        **saving,
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=placement.device.type == "cpu",
        bf16=placement.dtype == torch.bfloat16,  # autocast; the weights it updates stay float32
        dataloader_num_workers=0,
        disable_tqdm=False,
        **sharding,
    )
