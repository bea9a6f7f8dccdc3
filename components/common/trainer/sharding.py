"""FSDP2 for the stages a TRL trainer trains (reward model, SFT, DPO/KTO): accelerate's FSDP plugin,
switched on through the Trainer's own arguments (`fsdp`, `fsdp_config`), as TRL users shard.

`sharding` means what it means for the RL step (components/common/sharding.py): "fsdp" shards with more
than one process, "auto" when one replica's training state would take more than half a GPU. Sharded,
each decoder layer is one FSDP2 unit (the classes the model names in `_no_split_modules`, the units our
RL engine shards too), checkpoints hold each process's shards (torch.distributed.checkpoint), and the
trained model is gathered whole before the first process saves it (`trained_model`).

accelerate (1.15) turns FSDP on only for GPU-like devices; on the CPU it falls back to DDP without a
word. FSDP2 itself runs on the CPU over gloo (our RL engine shards there), so `ShardedTraining` lets
the Trainer take accelerate's FSDP path there as well: the same code a GPU run takes, run by the tests.

Each process loads the whole model into host memory before it is sharded (as the Trainer does without
accelerate's `cpu_ram_efficient_loading`): a machine needs that many copies of it in RAM at the start.
"""

from __future__ import annotations

from components.common.distributed import TrainingProcesses
from components.common.models import Placement
from components.common.sharding import decoder_layers, device_memory_bytes, replica_training_bytes, uses_sharding


def shards(setting: str, model, lora_rank: int, processes: TrainingProcesses, placement: Placement) -> bool:
    """Whether the Trainer of `model` (loaded, adapters not yet added) shards, by `setting`."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = 0 if lora_rank > 0 else sum(p.numel() for p in model.parameters())  # adapters: next to nothing
    return uses_sharding(setting, processes.count, replica_training_bytes(weights, trainable),
                         device_memory_bytes(placement.device))


def fsdp_arguments(model) -> dict:
    """The Trainer arguments that shard `model` with FSDP2, decoder layer by decoder layer."""
    layer_classes = sorted({type(layer).__name__ for layer in decoder_layers(model)})
    return {"fsdp": True, "fsdp_config": {
        "version": 2,
        "transformer_layer_cls_to_wrap": layer_classes,
        "reshard_after_forward": True,
        "state_dict_type": "SHARDED_STATE_DICT",  # checkpoints: each process writes and reads its own shards
    }}


class ShardedTraining:
    """A Trainer mixin that sets accelerate's FSDP2 up as the project's other training steps train:

    - processes on the CPU, with FSDP asked for in the arguments: accelerate's FSDP2 path instead of
      the DDP accelerate falls back to there;
    - under bf16 mixed precision: gradients reduced between the processes, and accumulated over micro
      batches, in float32 (accelerate's policy would do both in bf16), as DDP and the RL engine keep them.
    """

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        import torch
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
        from torch.distributed.fsdp import MixedPrecisionPolicy

        state = self.accelerator.state
        if self.args.fsdp_plugin_args is not None and state.distributed_type == DistributedType.MULTI_CPU:
            state.distributed_type = DistributedType.FSDP
            state.fsdp_plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
            self.is_fsdp_enabled = True
        if self.is_fsdp_enabled and state.mixed_precision == "bf16":
            state.fsdp_plugin.mixed_precision_policy = MixedPrecisionPolicy(
                param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.bfloat16)


def with_adapters(model, peft_config):
    """`model` with the LoRA adapters `peft_config` describes added (None: `model` itself), shaped as a
    TRL trainer given that `peft_config` trains it: an unsharded copy to gather trained weights into."""
    if peft_config is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config)


def trained_model(trainer, whole_model, is_main: bool):
    """The model `trainer` trained, whole, for the first process to save (every process takes part; None
    in the others when sharded). Sharded, its weights are gathered into the unsharded copy `whole_model()`
    makes, which also takes the config and generation config the trainers edited (pad and end tokens)."""
    if not trainer.is_fsdp_enabled:
        return trainer.model
    from components.common.models import pretrained_model
    from components.common.sharding import whole_copy

    model = whole_copy(trainer.model, whole_model, is_main)
    if model is None:
        return None
    trained, copy = pretrained_model(trainer.model), pretrained_model(model)
    copy.config = trained.config
    if getattr(trained, "generation_config", None) is not None:  # a causal LM's; a reward model has none
        copy.generation_config = trained.generation_config
    return model
