"""Training on every GPU of a machine: one process per GPU, and what those processes share.

A training step whose container sees more than one GPU runs its training function once per GPU
(`run_on_every_gpu`), under PyTorch's own launcher (`torch.distributed.run`, i.e. torchrun). In
each process accelerate's `PartialState` joins the process group (NCCL between GPUs, gloo between
CPU processes) and pins the process to its GPU. The reward model's Hugging Face Trainer then trains
with DistributedDataParallel by itself; PPO uses `TrainingProcesses` to split each batch between the
processes and to combine gradients and statistics. With one GPU, or none, the function runs in the
calling process and `TrainingProcesses` is a single process whose operations do nothing.

The training function is called as `function(config, **kwargs)`: `config` is a dataclass with a
`validate(processes)` method and the keyword arguments are JSON values, so that they can be handed
to the launched processes in a file. Only the first process's return value comes back.
"""

import contextlib
import dataclasses
import datetime
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WORLD_SIZE_VARIABLE = "WORLD_SIZE"  # set by torchrun in each process it starts
# How long a process may wait for the others, e.g. while the first merges and saves a large model.
# A process that fails does not leave the others waiting: torchrun then stops them all.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=1)


def launched_processes() -> int:
    """How many processes the launcher started this one among (1 when not launched by one)."""
    return int(os.environ.get(WORLD_SIZE_VARIABLE, "1"))


def unshareable_sizes(sizes: dict[str, int], processes: int) -> list[str]:
    """A problem for each batch size that `processes` GPUs cannot share equally."""
    return [
        f"{name} {value} is not a multiple of the {processes} GPUs that share each batch"
        for name, value in sizes.items()
        if value % processes
    ]


@dataclass(frozen=True)
class TrainingProcesses:
    """This process's place among the processes that train together: rank 0 of 1 when alone."""

    rank: int = 0
    count: int = 1

    @classmethod
    def from_environment(cls) -> "TrainingProcesses":
        """Join the process group that torchrun set up, or stand alone when it did not start us."""
        if launched_processes() == 1:
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available(), timeout=COLLECTIVE_TIMEOUT)
        return cls(rank=state.process_index, count=state.num_processes)

    @property
    def is_main(self) -> bool:
        """The process that logs, saves and reports."""
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This process's contiguous share of `items` (whose length is a multiple of `count`)."""
        share = len(items) // self.count
        return items[self.rank * share : (self.rank + 1) * share]

    def total(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over every process (a new tensor; the input is left as it is)."""
        if self.count == 1:
            return tensor
        summed = tensor.detach().clone()
        torch.distributed.all_reduce(summed)
        return summed

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """The rows of every process's `tensor` (all of one shape), concatenated in rank order."""
        if self.count == 1:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.count)]
        torch.distributed.all_gather(parts, tensor.detach().contiguous())
        return torch.cat(parts)

    def wait_for_everyone(self) -> None:
        if self.count > 1:
            torch.distributed.barrier()

    def data_parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` with its gradients averaged over the processes at each backward (DDP), or itself.

        Rank 0's weights are copied to every process when it is wrapped, so randomly initialised
        parts (LoRA adapters) start out equal everywhere.
        """
        if self.count == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            forward_sync_buffers=False,  # buffers (rotary tables) are equal and never trained
        )


def gradient_sync_deferred(model: torch.nn.Module):
    """A context for a backward whose gradients the next backwards of the same minibatch add to: DDP's
    `no_sync`, so that the gradients are averaged once, at the minibatch's last backward. A model alone
    or sharded (FSDP reduce-scatters each backward into its gradient shards) has nothing to defer."""
    from torch.nn.parallel import DistributedDataParallel

    return model.no_sync() if isinstance(model, DistributedDataParallel) else contextlib.nullcontext()


def _qualified_name(thing: Any) -> str:
    return f"{thing.__module__}:{thing.__qualname__}"


def _resolve(qualified_name: str) -> Any:
    module_name, _, attribute = qualified_name.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def run_in_processes(count: int, function: Callable[..., Any], config: Any, **kwargs: Any) -> Any:
    """`function(config, **kwargs)` in `count` processes started by torchrun; rank 0's result.

    Their output goes to this process's stdout and stderr (the step's log). A failure in any of
    them ends all of them and raises here.
    """
    with tempfile.TemporaryDirectory(prefix="training-processes-") as scratch:
        request = Path(scratch) / "request.json"
        result = Path(scratch) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "function": _qualified_name(function),
                    "config_class": _qualified_name(type(config)),
                    "config": dataclasses.asdict(config),
                    "kwargs": kwargs,
                    "result": str(result),
                }
            )
        )
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={count}",
            "-m", __name__, str(request),
        ]
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0:
            raise RuntimeError(
                f"training in {count} processes failed (exit status {completed.returncode}); "
                "the log above shows the failing process's error"
            )
        return json.loads(result.read_text())


def run_on_every_gpu(function: Callable[..., Any], config: Any, **kwargs: Any) -> Any:
    """`function(config, **kwargs)` once per visible GPU when there are several, else right here."""
    gpus = torch.cuda.device_count()
    if gpus > 1 and launched_processes() == 1:
        config.validate(gpus)  # one clear error here rather than one traceback per process
        return run_in_processes(gpus, function, config, **kwargs)
    return function(config, **kwargs)


def _run_request(request_path: str) -> None:
    """What each launched process does: run the requested function; rank 0 writes its result."""
    request = json.loads(Path(request_path).read_text())
    processes = TrainingProcesses.from_environment()
    config = _resolve(request["config_class"])(**request["config"])
    result = _resolve(request["function"])(config, **request["kwargs"])
    if processes.is_main:
        Path(request["result"]).write_text(json.dumps(result))
    processes.wait_for_everyone()
    if processes.count > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _run_request(sys.argv[1])
