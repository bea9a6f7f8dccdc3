"""Training on every GPU of a machine: one process per GPU, and what those processes share.

A training step whose container sees more than one GPU runs its training function once per GPU
(`run_on_every_gpu`), under PyTorch's own launcher (`torch.distributed.run`, i.e. torchrun). In
each process accelerate's `PartialState` joins the process group (NCCL between GPUs, gloo between
CPU processes) and pins the process to its GPU. The reward model's Hugging Face Trainer then trains
with DistributedDataParallel by itself; PPO uses `TrainingProcesses` to split each batch between the
processes and to combine gradients and statistics. With one GPU, or none, the function runs in the
calling process and `TrainingProcesses` is a single process whose operations do nothing.

A step may also span several machines (nodes) that the platform starts together, each running the
same step: the worker pools of a Vertex AI custom job, or the pods of a Kubeflow PyTorchJob / Trainer
job. The platform says which machine is which in the environment (`Machines.from_environment`): then
torchrun on every machine meets the others at the first machine's address (a static rendezvous), and the
processes of all machines form one process group, numbered machine after machine.

The training function is called as `function(config, **kwargs)`: `config` is a dataclass with a
`validate(processes)` method and the keyword arguments are JSON values, so that they can be handed
to the launched processes in a file. Only the first process's return value comes back, on the first
machine; the other machines get None.
"""

import contextlib
import dataclasses
import datetime
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

WORLD_SIZE_VARIABLE = "WORLD_SIZE"  # set by torchrun in each process it starts
LOCAL_RANK_VARIABLE = "LOCAL_RANK"  # set by torchrun too; a platform sets WORLD_SIZE for its machines alone
VERTEX_CLUSTER_VARIABLE = "CLUSTER_SPEC"  # Vertex AI custom jobs: the worker pools' addresses, this task's place
VERTEX_MACHINE_POOLS = ("workerpool0", "workerpool1")  # the primary replica, then the workers (same machines)
# Kubeflow (PyTorchJob, Trainer's torch runtime): torchrun's own settings, as torchrun reads them from the
# environment (PET_ + the option's name)
KUBEFLOW_NODES_VARIABLES = ("PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
# How long a process may wait for the others, e.g. while the first merges and saves a large model.
# A process that fails does not leave the others waiting: torchrun then stops them all.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=1)


def launched_processes() -> int:
    """How many processes the launcher started this one among (1 when not launched by one)."""
    if LOCAL_RANK_VARIABLE not in os.environ:
        return 1
    return int(os.environ[WORLD_SIZE_VARIABLE])


@dataclass(frozen=True)
class Machines:
    """The machines one training step runs on together, and this one's place among them (`rank`):
    a single machine unless the platform's environment describes several."""

    count: int = 1
    rank: int = 0
    address: str = ""  # of the first machine, where the others meet it
    port: int = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Machines":
        """From a Vertex AI custom job's CLUSTER_SPEC, or Kubeflow's PET_NNODES, PET_NODE_RANK,
        PET_MASTER_ADDR and PET_MASTER_PORT; one machine when neither is set."""
        if VERTEX_CLUSTER_VARIABLE in environ:
            return cls._from_vertex_cluster(environ[VERTEX_CLUSTER_VARIABLE])
        if KUBEFLOW_NODES_VARIABLES[0] in environ:
            missing = [name for name in KUBEFLOW_NODES_VARIABLES if name not in environ]
            if missing:
                raise RuntimeError(f"{KUBEFLOW_NODES_VARIABLES[0]} is set but not {', '.join(missing)}: "
                                   "the job does not say where the first machine is")
            count, rank, address, port = (environ[name] for name in KUBEFLOW_NODES_VARIABLES)
            if not (count.isdigit() and rank.isdigit() and port.isdigit()):
                raise RuntimeError(f"{KUBEFLOW_NODES_VARIABLES[0]}={count!r}, {KUBEFLOW_NODES_VARIABLES[1]}={rank!r}, "
                                   f"{KUBEFLOW_NODES_VARIABLES[3]}={port!r}: expected whole numbers (a fixed number "
                                   "of machines; elastic ranges are not supported)")
            return cls(int(count), int(rank), address, int(port))
        return cls()

    @classmethod
    def _from_vertex_cluster(cls, text: str) -> "Machines":
        try:
            spec = json.loads(text)
            cluster = spec["cluster"]
            machines = [(pool, index) for pool in VERTEX_MACHINE_POOLS for index in range(len(cluster.get(pool, [])))]
            if len(machines) <= 1:  # a job of one machine (every Vertex custom job sets CLUSTER_SPEC)
                return cls()
            rank = machines.index((spec["task"]["type"], spec["task"]["index"]))
            address, _, port = cluster[VERTEX_MACHINE_POOLS[0]][0].rpartition(":")
            return cls(len(machines), rank, address, int(port))
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise RuntimeError(f"{VERTEX_CLUSTER_VARIABLE} does not describe this task's place among the "
                               f"workerpool0/workerpool1 machines ({type(error).__name__}: {error}): {text}") from None

    def launcher_options(self) -> list[str]:
        """torchrun's options that place this machine's processes among every machine's."""
        if self.count == 1:
            return ["--standalone"]
        return [f"--nnodes={self.count}", f"--node-rank={self.rank}", f"--master-addr={self.address}",
                f"--master-port={self.port}"]


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


def write_request(path: Path, function: Callable[..., Any], config: Any, kwargs: dict[str, Any], result: Path,
                  **more: Any) -> None:
    """The call `function(config, **kwargs)` as a file that another program reads (`read_request`), with where
    that program writes the result."""
    path.write_text(json.dumps({"function": _qualified_name(function), "config_class": _qualified_name(type(config)),
                                "config": dataclasses.asdict(config), "kwargs": kwargs, "result": str(result),
                                **more}))


def read_request(path: str | Path) -> tuple[Callable[..., Any], Any, dict]:
    """The function, config and request (its `kwargs`, `result` and anything more) that `write_request` wrote."""
    request = json.loads(Path(path).read_text())
    return _resolve(request["function"]), _resolve(request["config_class"])(**request["config"]), request


def run_in_processes(count: int, function: Callable[..., Any], config: Any, machines: Machines = Machines(),
                     **kwargs: Any) -> Any:
    """`function(config, **kwargs)` in `count` processes started by torchrun on this machine, joined with
    those of the other `machines`; rank 0's result (None on any machine but the first).

    Their output goes to this process's stdout and stderr (the step's log). A failure in any of
    them ends all of them and raises here.
    """
    with tempfile.TemporaryDirectory(prefix="training-processes-") as scratch:
        request = Path(scratch) / "request.json"
        result = Path(scratch) / "result.json"
        write_request(request, function, config, kwargs, result)
        command = [
            sys.executable, "-m", "torch.distributed.run", *machines.launcher_options(), f"--nproc-per-node={count}",
            "-m", __name__, str(request),
        ]
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0:
            raise RuntimeError(
                f"training in {count * machines.count} processes failed (exit status {completed.returncode}); "
                "the log above shows the failing process's error"
            )
        return json.loads(result.read_text()) if machines.rank == 0 else None


def machines_problem(machines: Machines, replica_count: int) -> str | None:
    """Why a step that asked for `replica_count` machines cannot train on `machines`; None when it can."""
    if machines.count == replica_count:
        return None
    if machines.count == 1:
        return (f"replica_count is {replica_count} but this step was started on one machine: a template compiled by "
                "compile.py runs each step on one machine; `rlhf-pipeline submit` runs the training steps on "
                "replica_count machines (Vertex AI custom jobs, or Kubeflow TrainJobs with --shared-volume)")
    return (f"this step was started on {machines.count} machines ({VERTEX_CLUSTER_VARIABLE} or "
            f"{KUBEFLOW_NODES_VARIABLES[0]}) but replica_count is {replica_count}")


def run_on_every_gpu(function: Callable[..., Any], config: Any, *, replica_count: int = 1, **kwargs: Any) -> Any:
    """`function(config, **kwargs)` once per visible GPU of every machine of the step when there are several
    (one process per machine without GPUs), else right here. The platform must have started the step on
    `replica_count` machines.

    On a machine other than the first, the step's program ends here (exit status 0) once this machine's
    processes are done: the first machine writes the step's outputs, the others must not write over them.
    """
    from components.common.errors import UserInputError
    from components.common.train_jobs import TrainJobSettings, run_as_train_job

    machines = Machines.from_environment()
    train_job = TrainJobSettings.from_environment()
    if train_job is not None and replica_count > 1 and machines.count == 1:
        return run_as_train_job(function, config, replica_count=replica_count, settings=train_job, **kwargs)
    problem = machines_problem(machines, replica_count)
    if problem:
        raise UserInputError(problem)
    gpus = torch.cuda.device_count()
    if (gpus > 1 or machines.count > 1) and launched_processes() == 1:
        per_machine = max(gpus, 1)
        config.validate(per_machine * machines.count)  # one clear error here rather than one traceback per process
        result = run_in_processes(per_machine, function, config, machines=machines, **kwargs)
        if machines.rank > 0:
            print(f"machine {machines.rank + 1} of {machines.count}: its share of the training is done; "
                  "the first machine writes the outputs", flush=True)
            raise SystemExit(0)
        return result
    return function(config, **kwargs)


def _run_request(request_path: str) -> None:
    """What each launched process does: run the requested function; rank 0 writes its result."""
    function, config, request = read_request(request_path)
    processes = TrainingProcesses.from_environment()
    result = function(config, **request["kwargs"])
    if processes.is_main:
        Path(request["result"]).write_text(json.dumps(result))
    processes.wait_for_everyone()
    # An engine the function left (vLLM's) tears the process group down itself when it is collected: collected
    # here, while the group exists, rather than at exit after it is gone
    gc.collect()
    if processes.count > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _run_request(sys.argv[1])
