"""Whether a run's training steps fit the device they get, and the cheapest setting that makes one fit.

`submit` and `run` call `check_memory` before any request is sent or stage starts; `rlhf-pipeline plan`
prints the same plan as tables (tables.py). The device is the Vertex accelerator `accelerator_type`
names ('GPU': NVIDIA_TESLA_A100, as submit resolves it), or for a local run this machine: its first
CUDA GPU, else its RAM (shared by every training process, in float32 as the stages compute there).
"""

import os
from dataclasses import dataclass
from typing import Any

from cli.memory_plan.estimate import CPU_COMPUTE_BYTES, GIB, GPU_COMPUTE_BYTES, StepPlan
from cli.memory_plan.training_steps import PlanInputs, training_step_plans
from components.common import defaults
from components.common.errors import UserInputError
from components.common.model_architecture import architecture_of
from pipeline.resources import ACCELERATOR_MEMORY_GIB, DEFAULT_VERTEX_GPU, GPU
from pipeline.vertex_custom_jobs import MACHINE_TYPES

LARGER_ACCELERATORS = ("NVIDIA_L4", "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "NVIDIA_H100_80GB", "NVIDIA_H200_141GB")
MORE_GPUS = (2, 4, 8)  # accelerator_count values tried; Vertex machines hold at most 8 GPUs
MORE_MACHINES = (2, 4, 8)  # replica_count values tried for a sharded RL step, with 8 GPUs each


@dataclass(frozen=True)
class Device:
    """Where each training process runs, and how much memory the plan may fill."""

    name: str  # a Vertex accelerator name, "cuda:0 (NAME)" or "CPU RAM"
    memory: int  # bytes of one GPU, or of the machine's RAM
    on_gpu: bool
    vertex: bool  # a Vertex accelerator: a larger one may be suggested

    def holds(self, plan: StepPlan, processes: int) -> bool:
        """A GPU holds one process; the CPU's RAM holds all of them."""
        return plan.total * (1 if self.on_gpu else processes) <= self.memory


def vertex_device(accelerator_type: str) -> Device | None:
    """The Vertex accelerator a value of `accelerator_type` names; None for a Kubernetes resource, whose
    memory is not known here."""
    name = DEFAULT_VERTEX_GPU if accelerator_type.upper() == GPU else accelerator_type
    if name not in ACCELERATOR_MEMORY_GIB:
        return None
    return Device(name, ACCELERATOR_MEMORY_GIB[name] * GIB, on_gpu=True, vertex=True)


def local_device() -> Device:
    """This machine as a local run uses it: CUDA when present (components/common/models.py), else the CPU."""
    import torch

    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return Device(f"cuda:0 ({properties.name})", properties.total_memory, on_gpu=True, vertex=False)
    return Device("CPU RAM", os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), on_gpu=False, vertex=False)


def with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter: the value given, else the table's default."""
    from pipeline.parameters import defaults as parameter_defaults

    return {**parameter_defaults(), **{name: value for name, value in values.items() if value is not None}}


def plan_for(values: dict[str, Any], device: Device) -> list[StepPlan]:
    """Every training step's plan for the parameter values (each one given or defaulted) on `device`;
    UserInputError when a model's architecture cannot be read here."""
    values = with_defaults(values)
    policy = architecture_of(values["large_model_reference"])
    reward = (architecture_of(values["reward_model_reference"], "reward_model_reference")
              if values["reward_model_reference"] else policy)
    inputs = PlanInputs(policy, reward, GPU_COMPUTE_BYTES if device.on_gpu else CPU_COMPUTE_BYTES,
                        training_processes(values), device.on_gpu, device.memory if device.on_gpu else None)
    return training_step_plans(values, inputs)


def training_processes(values: dict[str, Any]) -> int:
    """A training step's processes: one per GPU of each of its machines (one machine on the CPU)."""
    return values["accelerator_count"] * values["replica_count"]


def _gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


def _needs(plan: StepPlan, device: Device, processes: int) -> int:
    return plan.total * (1 if device.on_gpu else processes)


def _candidates(values: dict[str, Any], step: str, device: Device) -> list[tuple[str, dict[str, Any], Device, str]]:
    """Settings to try, cheapest first: activation checkpointing (RL: the same maths), a smaller micro-batch,
    LoRA, a larger GPU, more GPUs and machines (sharded), and LoRA with the smallest micro-batch (alone, then with each
    larger GPU). Each is (what to set, the changed values, the device, a remark)."""
    batch, count, machines = values["batch_size"], training_processes(values), values["replica_count"]
    minibatch = values["ppo_minibatch_size"]
    smaller = []
    online_rl = step.startswith("Tune policy (RL)")
    if online_rl:  # recomputed activations (the same maths), then the update's rows, then the rollout's responses
        group = values["num_generations"] if values["algorithm"] != "ppo" else 1
        if not values["activation_checkpointing"]:
            smaller.append({"activation_checkpointing": True})
        smaller += [{"ppo_minibatch_size": size} for size in _halvings(minibatch, count)]
        smaller += [{"batch_size": size, "ppo_minibatch_size": min(minibatch, size)}
                    for size in _halvings(batch, count) if size % group == 0]
    else:
        smaller += [{"batch_size": size} for size in _halvings(batch, count)]
    lora = {}
    if step.startswith("Train reward model"):
        if not values.get("reward_model_lora_rank"):
            lora = {"reward_model_lora_rank": defaults.REWARD_MODEL_LORA_RANK}
    elif not values.get("policy_lora_rank"):
        lora = {"policy_lora_rank": defaults.POLICY_LORA_RANK}
    larger = [vertex_device(name) for name in LARGER_ACCELERATORS
              if device.vertex and ACCELERATOR_MEMORY_GIB[name] * GIB > device.memory]
    candidates = [(_settings(change), change, device, "") for change in smaller]
    if lora:
        candidates.append((_settings(lora), lora, device, ""))
    candidates += [(f"accelerator_type={d.name}", {}, d, "") for d in larger]
    if device.on_gpu:
        def shareable(processes: int) -> bool:  # the batch (and the RL step's minibatch) split between them
            return batch % processes == 0 and (not online_rl or minibatch % processes == 0)

        # sharded, each GPU holds 1/n of the trained model's state, then 1/(8 m) over m machines
        candidates += [(f"accelerator_count={n} sharding=fsdp", {"accelerator_count": n, "sharding": "fsdp"},
                        device, "") for n in MORE_GPUS if n > values["accelerator_count"] and shareable(n * machines)]
        gpus = MORE_GPUS[-1]
        spans_machines = device.vertex and gpus in MACHINE_TYPES.get(device.name, {})  # custom jobs on Vertex AI
        candidates += [(f"replica_count={m} accelerator_count={gpus} sharding=fsdp",
                        {"replica_count": m, "accelerator_count": gpus, "sharding": "fsdp"}, device, "")
                       for m in MORE_MACHINES if spans_machines and m > machines and shareable(m * gpus)]
    if lora and smaller:
        combined = {**lora, **smaller[-1]}
        candidates.append((_settings(combined), combined, device, ""))
        candidates += [(f"{_settings(combined)} accelerator_type={d.name}", combined, d, "") for d in larger]
    return candidates


def _halvings(size: int, multiple_of: int) -> list[int]:
    """size / 2, size / 4, ... down to 1, kept where a multiple of `multiple_of` (the GPUs share it)."""
    sizes, size = [], size // 2
    while size >= 1:
        if size % multiple_of == 0:
            sizes.append(size)
        size //= 2
    return sizes


def _settings(change: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in change.items())


@dataclass(frozen=True)
class Fix:
    """A change of settings (and maybe of accelerator) with which a step fits."""

    setting: str  # "name=value name=value", as `--set` takes them
    values: dict[str, Any]  # every parameter value, the change applied
    device: Device
    needs: int  # bytes the step then needs (per GPU, or in RAM for all processes)
    remark: str

    def words(self) -> str:
        return f"--set {self.setting.replace(' ', ' --set ')} (needs {_gib(self.needs)}){self.remark}"


def first_fix(values: dict[str, Any], plan: StepPlan, device: Device) -> Fix | None:
    """The first setting (in `_candidates`' order) with which the step fits; None when none does."""
    values = with_defaults(values)
    for setting, change, target, remark in _candidates(values, plan.step, device):
        changed = {**values, **change}
        fixed = next(p for p in plan_for(changed, target) if p.step == plan.step)
        processes = training_processes(changed)
        if target.holds(fixed, processes):
            if target is not device:
                changed["accelerator_type"] = target.name
            return Fix(setting, changed, target, _needs(fixed, target, processes), remark)
    return None


def fitting_settings(values: dict[str, Any], device: Device, rounds: int = 4) -> Fix | None:
    """Settings with which every training step fits: the first step that does not fit gets its first fix,
    then the next, and so on (at most `rounds` steps). An empty setting when all fit as they are; None
    when some step fits with no setting tried."""
    values = with_defaults(values)
    settings: list[str] = []
    for _ in range(rounds):
        processes = training_processes(values)
        failing = next((plan for plan in plan_for(values, device) if not device.holds(plan, processes)), None)
        if failing is None:
            largest = max(plan_for(values, device), key=lambda plan: plan.total)
            return Fix(" ".join(settings), values, device, _needs(largest, device, processes), "")
        fix = first_fix(values, failing, device)
        if fix is None:
            return None
        settings.append(fix.setting)
        values, device = fix.values, fix.device
    return None


def cheapest_fix(values: dict[str, Any], plan: StepPlan, device: Device) -> str:
    """The first setting (in `_candidates`' order) with which the step fits, in words."""
    fix = first_fix(values, plan, device)
    if fix is not None:
        return fix.words()
    return ("no single setting tried fits (smaller batches, activation checkpointing, LoRA, larger GPUs, more GPUs "
            "and machines, sharded): use a smaller model")


def memory_problem(values: dict[str, Any], device: Device) -> str | None:
    """One line for the first training step that does not fit `device`, with the cheapest fix; None when all fit."""
    values = with_defaults(values)
    processes = training_processes(values)
    for plan in plan_for(values, device):
        if not device.holds(plan, processes):
            where = "per GPU" if device.on_gpu else f"for {processes} process(es)"
            return (f"memory plan: step '{plan.step}' needs {_gib(_needs(plan, device, processes))} {where} and "
                    f"{device.name} has {_gib(device.memory)}; cheapest fix that fits: "
                    f"{cheapest_fix(values, plan, device)} (`rlhf-pipeline plan` shows every step)")
    return None


def check_memory(values: dict[str, Any], device: Device | None, note) -> None:
    """Refuse (UserInputError) a run whose training steps cannot fit `device`; `note` gets one line when the
    plan cannot be made here (an accelerator or a model whose size is unknown)."""
    if device is None:
        note(f"memory plan skipped: the memory of accelerator_type {values.get('accelerator_type')} is not known here")
        return
    try:
        problem = memory_problem(values, device)
    except UserInputError as error:
        note(f"memory plan skipped: {error}")
        return
    if problem:
        raise UserInputError(problem)

