"""Fully sharded data parallel (FSDP2, torch's `fully_shard`): a model's weights, gradients and optimizer
state split between the processes that train together, instead of a whole copy in each.

`sharding` (a pipeline parameter) says whether the training processes shard:

- "none": each process holds whole copies of the models (DDP), as on one GPU;
- "fsdp": with more than one process, each decoder layer and the rest of the model are sharded
  (`shard_model`); each process holds about 1/N of the weights, gradients and Adam state. A layer's
  weights are gathered for its forward and backward, then dropped again;
- "auto": "fsdp" when one replica's weights, gradients and optimizer state would take more than
  `AUTO_SHARD_SHARE` of a GPU's memory (`shards_automatically`), else "none". On the CPU, "auto" never
  shards: CPU runs are for trying the pipeline out.

Generation needs every weight at every decoding step, and each process decodes its own prompts for
as many steps as its own answers need: gathering layer by layer would make every process wait for
the slowest at every token. So a sharded model is gathered whole for the rollout (`gathered`), as
TRL, OpenRLHF and verl hand whole weights to their generation engine, and sharded again for the
update.
"""

from __future__ import annotations  # torch is imported where it is used: configs import this module

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

SHARDING_CHOICES = ("auto", "none", "fsdp")
AUTO, NONE, FSDP = SHARDING_CHOICES
# "auto" shards when one replica's training state would take more than this share of a GPU; the rest
# is left for activations, the KV cache of generation and the allocator's slack.
AUTO_SHARD_SHARE = 0.5
ADAM_STATE_BYTES = 8  # two float32 moments per trainable weight
GRADIENT_BYTES = 4  # float32 gradients of the float32 trainable weights


def replica_training_bytes(weight_bytes: int, trainable: int) -> int:
    """Bytes one whole replica holds while it trains: its weights (`weight_bytes`), and for each of its
    `trainable` weights a gradient and Adam's two moments. What "auto" weighs, in the stage and in the plan."""
    return weight_bytes + trainable * (GRADIENT_BYTES + ADAM_STATE_BYTES)


def training_state_bytes(model: nn.Module) -> int:
    """`replica_training_bytes` of a loaded model."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return replica_training_bytes(weights, sum(p.numel() for p in model.parameters() if p.requires_grad))


def sharding_problems(setting: str) -> list[str]:
    """What is wrong with a `sharding` setting, for a stage config's validation (empty: nothing)."""
    return [] if setting in SHARDING_CHOICES else [f"sharding must be one of {SHARDING_CHOICES}, got {setting!r}"]


def shards_automatically(replica_bytes: int, device_bytes: int | None) -> bool:
    """Whether "auto" shards: a replica's training state over AUTO_SHARD_SHARE of the device (None: the CPU)."""
    return device_bytes is not None and replica_bytes > AUTO_SHARD_SHARE * device_bytes


def uses_sharding(setting: str, processes: int, replica_bytes: int, device_bytes: int | None) -> bool:
    """Whether a training step of `processes` processes shards, by the `sharding` setting."""
    if setting not in SHARDING_CHOICES:
        raise ValueError(f"sharding must be one of {SHARDING_CHOICES}, got {setting!r}")
    if processes == 1 or setting == NONE:
        return False
    return setting == FSDP or shards_automatically(replica_bytes, device_bytes)


def device_memory_bytes(device: torch.device) -> int | None:
    """A GPU's total memory; None for the CPU."""
    if device.type != "cuda":
        return None
    import torch

    return torch.cuda.get_device_properties(device).total_memory


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a Hugging Face model: the modules of the classes it names as never to be
    split between devices (`_no_split_modules`, e.g. LlamaDecoderLayer)."""
    from components.common.models import pretrained_model

    pretrained = pretrained_model(model)
    names = set(getattr(pretrained, "_no_split_modules", None) or ())
    layers = [module for module in pretrained.modules() if type(module).__name__ in names]
    if not layers:
        raise ValueError(f"{type(pretrained).__name__} names no decoder layer class (_no_split_modules): "
                         "it cannot be sharded layer by layer; use sharding 'none'")
    return layers


def shard_model(model: nn.Module) -> None:
    """Shard `model` (a Hugging Face causal LM, or one wrapped by peft) between the training processes,
    in place: each decoder layer is one unit gathered for its own forward and backward, the rest
    (embeddings, final norm, LM head) one more. Gradients are averaged over the processes, as DDP does.

    Weights keep their dtypes (float32 trainable weights; frozen ones in the compute dtype) and the
    forward passes their autocast, so the maths is the unsharded model's.
    """
    from torch.distributed.fsdp import fully_shard

    from components.common.models import pretrained_model

    for layer in decoder_layers(model):
        fully_shard(layer)
    fully_shard(pretrained_model(model))  # the root: the module every forward pass enters, so FSDP initialises it first


def shard_frozen_model(model: nn.Module) -> None:
    """`shard_model` for a model that only runs forward (a reference). FSDP2 keeps the root unit (embeddings,
    final norm, LM head) gathered after a forward pass, for the backward it expects next; a frozen model has
    none, so its root is sharded again after every forward pass, as its decoder layers are."""
    from components.common.models import pretrained_model

    shard_model(model)
    pretrained_model(model).register_forward_hook(lambda module, inputs, output: module.reshard())


def shard_head(head: nn.Module) -> None:
    """Shard a small trained module outside the language model (PPO's value head) as its own unit."""
    from torch.distributed.fsdp import fully_shard

    fully_shard(head)


def _sharded_units(module: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [unit for unit in module.modules() if isinstance(unit, FSDPModule)]


def is_sharded(module: nn.Module) -> bool:
    return bool(_sharded_units(module))


@contextlib.contextmanager
def gathered(module: nn.Module) -> Iterator[None]:
    """Every sharded unit of `module` gathered whole, and kept so across forward passes, inside the
    block; sharded again after it. Nothing to do for a module that is not sharded.

    Each process takes part in the gathering on entry; inside, forward passes make no collective
    calls, so each process may run as many as it needs (generation). Gradients are not gathered:
    train outside the block.
    """
    units = _sharded_units(module)
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded tensor gathered whole (every process takes part), or the tensor itself."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state with every tensor whole, on the CPU, in the first process (empty in the others);
    every process takes part."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def whole_copy(module: nn.Module, make_copy, is_main: bool):
    """An unsharded copy of the sharded `module` for the first process: `make_copy()` (the same model,
    unsharded, on the CPU) with `module`'s weights gathered into it; None in the other processes. Every
    process takes part."""
    weights = full_state_dict(module)
    if not is_main:
        return None
    copy = make_copy()
    copy.load_state_dict(weights)
    return copy


def local_parameter_count(module: nn.Module) -> int:
    """How many of `module`'s weights this process holds (its shards' elements, when sharded)."""
    from torch.distributed.tensor import DTensor

    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in module.parameters())
