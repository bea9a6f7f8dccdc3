"""TRL's DPOTrainer and KTOTrainer, set up for the policy, its reference and our tokenized rows.

The reference is the base policy. Under LoRA (lora_rank > 0) it is the policy with its adapters
disabled, which TRL uses when it gets a peft model and no reference model; trained in full, the
policy gets an explicit frozen copy loaded from `policy_source` (TRL would otherwise reload one from
the path in the model's config).

Precision: trainable weights (LoRA adapters, or the whole policy when `lora_rank` is 0) are held in
float32, frozen ones (the LoRA base, the reference) in the placement's dtype (bf16 on CUDA); the
trainer runs forward passes under bf16 autocast there, so AdamW never updates bf16 weights.
"""

from pathlib import Path

from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

from components.common.distributed import TrainingProcesses
from components.common.models import Placement, weights_dtype
from components.common.sharding import shard_frozen_model
from components.common.trainer.arguments import training_arguments
from components.common.trainer.sharding import ShardedTraining, with_adapters
from components.tune_preference.config import KTO_LOSS_TYPE, PreferenceTuningConfig


class _AlreadyTokenized:
    """Takes the training rows as they come: tokenized by trl_rows.py the way the policy generates
    (components/common/sequences.py), where TRL would tokenize prompt + answer texts itself."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


class TokenizedDPOTrainer(_AlreadyTokenized, ShardedTraining, DPOTrainer):
    pass


class TokenizedKTOTrainer(_AlreadyTokenized, ShardedTraining, KTOTrainer):
    pass


def trainer_arguments(
    config: PreferenceTuningConfig,
    trainer_dir: Path,
    placement: Placement,
    processes: TrainingProcesses,
    checkpoint_steps: int,
    policy,
):
    """DPOConfig or KTOConfig for `config` training `policy` (as loaded); with `checkpoint_steps`, a
    checkpoint every that many steps."""
    common = dict(
        **training_arguments(config, config.steps, trainer_dir, placement, processes, checkpoint_steps, policy),
        beta=config.beta,
        max_length=None,  # the rows are cut already, as generation cuts prompts and answers
    )
    if config.algorithm == "kto":
        return KTOConfig(
            **common,
            loss_type=KTO_LOSS_TYPE,
            desirable_weight=config.desirable_weight,
            undesirable_weight=config.undesirable_weight,
        )
    return DPOConfig(**common, loss_type=config.loss_types)


def policy_to_train(config: PreferenceTuningConfig, policy_source: str, placement: Placement):
    """The policy as training starts: trainable weights in float32, LoRA's frozen base in the compute dtype."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(policy_source, dtype=weights_dtype(placement, config.lora_rank))


def adapters(config: PreferenceTuningConfig):
    """The LoRA adapters trained, or None when every weight is."""
    from peft import LoraConfig

    if config.lora_rank == 0:
        return None
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_rank,
        lora_alpha=2 * config.lora_rank,
        lora_dropout=0.0,
        target_modules="all-linear",  # every attention and MLP projection, not the LM head
        bias="none",
    )


def whole_policy(config: PreferenceTuningConfig, policy_source: str, placement: Placement):
    """An unsharded policy shaped as the trainer trains it (adapters added), for trained weights."""
    return with_adapters(policy_to_train(config, policy_source, placement), adapters(config))


def build_trainer(
    config: PreferenceTuningConfig,
    policy_source: str,
    tokenizer,
    rows: list[dict],
    trainer_dir: Path,
    placement: Placement,
    processes: TrainingProcesses,
    callbacks: list,
    checkpoint_steps: int = 0,
):
    """TRL's DPOTrainer or KTOTrainer (`config.algorithm`) on the tokenized `rows` (trl_rows.py)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    policy = policy_to_train(config, policy_source, placement)
    reference = None
    if config.lora_rank == 0:
        reference = AutoModelForCausalLM.from_pretrained(policy_source, dtype=placement.dtype)
        reference.requires_grad_(False)
    args = trainer_arguments(config, trainer_dir, placement, processes, checkpoint_steps, policy)
    if reference is not None and args.fsdp_plugin_args is not None:
        # decoder layer by decoder layer, as the policy: TRL would shard it as one unit, gathered whole at each forward
        shard_frozen_model(reference)
    trainer_class = TokenizedKTOTrainer if config.algorithm == "kto" else TokenizedDPOTrainer
    return trainer_class(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=adapters(config),
        callbacks=callbacks,
    )
