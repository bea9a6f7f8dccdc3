"""The memory plan as text: one table per training step (`rlhf-pipeline plan`), and README's Scale table."""

from typing import Any

from cli.memory_plan.estimate import GIB, StepPlan
from cli.memory_plan.fit import Device, fitting_settings, plan_for, vertex_device

COLUMNS = ("weights", "gradients", "optimizer", "activations", "KV cache", "total")


def _gib(size: int) -> str:
    return f"{size / GIB:.2f}"


def step_table(plan: StepPlan, device: Device, processes: int) -> str:
    """The step's models, one row each (GiB), then its total against the device's memory."""
    rows = [("model",) + COLUMNS]
    for model in plan.models:
        sizes = (model.weights, model.gradients, model.optimizer, model.activations, model.kv_cache,
                 model.peak)
        rows.append((model.name,) + tuple(_gib(size) for size in sizes))
    if plan.runtime:
        rows.append(("CUDA context" if device.on_gpu else "the process",) + ("",) * 5 + (_gib(plan.runtime),))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) + 1)]
    lines = ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in rows]
    share = "per GPU" if device.on_gpu else f"x {processes} process(es)" if processes > 1 else "in RAM"
    needs = plan.total * (1 if device.on_gpu else processes)
    fits = "yes" if device.holds(plan, processes) else "NO"
    header = (f"{plan.step} (GiB; total = weights + optimizer + the larger of gradients + KV cache (generation) "
              "and activations (update))")
    footer = (f"needs {needs / GIB:.2f} GiB {share}; {device.name} has {device.memory / GIB:.2f} GiB; fits: {fits}")
    return "\n".join([header, *lines, footer, *(f"  note: {note}" for note in plan.notes)])


SCALE_MODELS = (("1B", "meta-llama/Llama-3.2-1B"), ("7B", "meta-llama/Llama-2-7b-hf"), ("70B", "meta-llama/Llama-2-70b-hf"))
SCALE_ALGORITHMS = ("ppo", "grpo", "dpo")
SCALE_DEVICE = "NVIDIA_A100_80GB"  # NVIDIA_H100_80GB has the same 80 GiB: the same plan fits both or neither


def scale_rows() -> list[dict[str, Any]]:
    """README's Scale table: each model, algorithm and training (LoRA or full) with the other parameters at
    their defaults (and a preference dataset, so a reward model is trained), on one 80 GB GPU."""
    device = vertex_device(SCALE_DEVICE)
    rows = []
    for size, model in SCALE_MODELS:
        for algorithm in SCALE_ALGORITHMS:
            for lora in (True, False):
                ranks = {} if lora else {"policy_lora_rank": 0, "reward_model_lora_rank": 0}
                values = {"large_model_reference": model, "algorithm": algorithm, "preference_dataset": "pairs",
                          "prompt_dataset": "prompts", "accelerator_type": SCALE_DEVICE, **ranks}
                plans = plan_for(values, device)
                largest = max(plans, key=lambda plan: plan.total)
                fix = fitting_settings(values, device)
                rows.append({"model": f"{size} ({model})", "algorithm": algorithm.upper(),
                             "training": "LoRA" if lora else "full", "step": largest.step, "needs": largest.total,
                             "fits": device.holds(largest, 1), "fix": fix})
    return rows


def scale_table() -> str:
    """README's Scale table, in Markdown (tests/test_readme.py keeps the README's copy equal to it)."""
    lines = ["| model | algorithm | training | largest step | needs (GiB) | fits one 80 GB GPU | settings with which "
             "every step fits (largest step then needs) |",
             "|---|---|---|---|---|---|---|"]
    for row in scale_rows():
        fix = row["fix"]
        if fix is None:
            settings = "none tried fits"
        elif not fix.setting:
            settings = "-"
        else:
            settings = f"`{fix.setting}` ({fix.needs / GIB:.1f} GiB)"
        lines.append(f"| {row['model']} | {row['algorithm']} | {row['training']} | {row['step']} | "
                     f"{row['needs'] / GIB:.1f} | {'yes' if row['fits'] else 'no'} | {settings} |")
    return "\n".join(lines)
