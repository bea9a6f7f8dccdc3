"""FSDP2 for the stages a TRL trainer trains (reward model, SFT, DPO/KTO): accelerate's FSDP plugin,
switched on through the Trainer's own arguments (`fsdp`, `fsdp_config`), as TRL users shard.

`sharding` means what it means for the RL step (components/common/sharding.py): "fsdp" shards with more
than one process, "auto" when one replica's training state would take more than half a GPU. Sharded,
each decoder layer is one FSDP2 unit (the classes the model names in `_no_split_modules`, the units our
RL engine shards too), checkpoints hold each process's shards (torch.distributed.checkpoint), and the
trained model is gathered whole before the first process saves it (`whole_model_weights`).

accelerate (1.15) turns FSDP on only for GPU-like devices; on the CPU it falls back to DDP without a
word. FSDP2 itself runs on the CPU over gloo (our RL engine shards there), so `ShardsOnTheCpuToo` lets
the Trainer take accelerate's FSDP path there as well: the same code a GPU run takes, run by the tests.
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


class ShardsOnTheCpuToo:
    """A Trainer mixin: with FSDP asked for in its arguments and processes on the CPU, accelerate's FSDP2
    path instead of the DDP accelerate falls back to there."""

    def create_accelerator_and_postprocess(self):
        super().create_accelerator_and_postprocess()
        from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

        state = self.accelerator.state
        if self.args.fsdp_plugin_args is None or state.distributed_type != DistributedType.MULTI_CPU:
            return
        plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
        if state.mixed_precision != "no":
            plugin.set_mixed_precision(state.mixed_precision)
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = plugin
        self.is_fsdp_enabled = True


def with_adapters(model, peft_config):
    """`model` with the LoRA adapters `peft_config` describes added (None: `model` itself), shaped as a
    TRL trainer given that `peft_config` trains it: an unsharded copy to gather trained weights into."""
    if peft_config is None:
        return model
    from peft import get_peft_model

    return get_peft_model(model, peft_config)


def whole_model_weights(trainer) -> dict | None:
    """The trained model's weights gathered whole (every process takes part): on the CPU in the first
    process, empty in the others; None when the Trainer does not shard."""
    if not trainer.is_fsdp_enabled:
        return None
    from components.common.sharding import full_state_dict

    return full_state_dict(trainer.model)
