"""The memory plan (cli/memory_plan/) against measurement on the CPU: two training steps of the real stage
code per case, in a child process of its own, its peak resident memory above the process's size before
the models load (benchmarks/peak_memory.py), next to the plan's total for the same settings.

Cases (two steps each: the first has no optimizer state yet during its update): GRPO (our engine: policy, float32 reference, a rule reward, no reward model),
the reward model, DPO, KTO and supervised fine-tuning (TRL), each trained in full, on
SmolLM2-135M-Instruct (benchmarks/smollm2.py) and on the built-in tiny summarizer (built into a
temporary folder first). Data: the sample task's prompts and pairs (SFT: a pair's prompt and chosen
answer), cut with the model's tokenizer so that each row fills the length limits the plan assumes.

    OMP_NUM_THREADS=1 python benchmarks/memory_plan_check.py [--model smollm2|tiny|both] [--case grpo ...]
        [--sharded-processes N]

With `--sharded-processes N`, each case runs in N processes (torchrun, gloo) with `sharding` fsdp, and
the figure is the largest process's peak against the plan's per-process total for N processes.

Prints one line per case: measured, planned, planned / measured.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: `benchmarks` and the components import from the repository
    sys.path.insert(0, str(REPO))
CASES = ("grpo", "reward", "dpo", "kto", "sft")
ALGORITHMS = {"grpo": "grpo", "reward": "ppo", "dpo": "dpo", "kto": "kto", "sft": "grpo"}  # the run's `algorithm`
STEP_NAMES = {"grpo": "Tune policy (RL)", "reward": "Train reward model", "dpo": "Tune policy on pairs",
              "kto": "Tune policy on pairs", "sft": "Supervised fine-tuning"}
PROMPT_TOKENS, RESPONSE_TOKENS = 64, 32
STEPS = 2  # the second step is the steady state: AdamW's moments exist from the first optimizer step on
SETTINGS = {  # pipeline parameter values of every case: full training, small batches
    "policy_lora_rank": 0, "reward_model_lora_rank": 0, "prompt_sequence_length": PROMPT_TOKENS,
    "target_sequence_length": RESPONSE_TOKENS, "batch_size": 8, "ppo_minibatch_size": 8, "ppo_epochs": 1,
    "num_generations": 4, "kl_coeff": 0.04, "reinforcement_learning_train_steps": STEPS, "reward_model_train_steps": STEPS,
}
REWARD_FUNCTION = "def length(completions, **kwargs):\n    return [float(len(c)) for c in completions]\n"


def _cut(tokenizer, text: str, tokens: int, keep_end: bool) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.decode(ids[-tokens:] if keep_end else ids[:tokens])


def write_data(model: str, folder: Path) -> None:
    """Canonical prompt rows and pairs from the sample task, cut to the length limits with the model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    data = REPO / "embedded_default" / "data"
    rows = [json.loads(line) for line in (data / "preference.jsonl").read_text().splitlines()[:64]]
    pairs = []
    for row in rows:
        prompt = _cut(tokenizer, row["input_text"], PROMPT_TOKENS - 30, keep_end=True)  # room for a chat template
        answers = [row["candidate_0"] + " " + row["candidate_1"]] * 2  # long enough to fill the response limit
        pairs.append({"prompt": prompt, "chosen": _cut(tokenizer, "Yes. " + answers[0] * 3, RESPONSE_TOKENS - 2, False),
                      "rejected": _cut(tokenizer, "No. " + answers[1] * 3, RESPONSE_TOKENS - 2, False)})
    (folder / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    prompts = [json.loads(line)["input_text"] for line in (data / "prompts.jsonl").read_text().splitlines()[:64]]
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    (folder / "reward.py").write_text(REWARD_FUNCTION)


def run_case(case: str, model: str, folder: Path, sharded: bool) -> int:
    """`STEPS` steps of `case` in this process (one of several, sharded, when `sharded`); returns the peak
    bytes it added (benchmarks/peak_memory.py)."""
    import torch

    from benchmarks.peak_memory import PeakMemory
    from components.common.canonical_data import PREFERENCE_FIELDS
    from components.common.chat_templates import PromptFormatter
    from components.common.canonical_data import read_canonical_rows
    from components.common.distributed import TrainingProcesses
    from components.common.models import Placement, load_tokenizer
    from components.common.stage_settings import settings_from_arguments
    from components.supervised_fine_tuning import training as supervised_training
    from components.supervised_fine_tuning.config import SupervisedTrainingConfig
    from components.train_reward_model import training as reward_training
    from components.train_reward_model.config import RewardTrainingConfig
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.training import train_policy
    from components.tune_preference import trainers as preference_trainers
    from components.tune_preference.config import PreferenceTuningConfig
    from components.tune_preference.training import training_rows
    from pipeline.parameters import defaults

    torch.manual_seed(0)
    values = {**defaults(), **SETTINGS, "reward_function": f"{folder / 'reward.py'}:length",
              "algorithm": ALGORITHMS[case], "sharding": "fsdp" if sharded else "none"}
    placement, processes = Placement(torch.device("cpu"), torch.float32), TrainingProcesses.from_environment()
    pairs = read_canonical_rows(folder / "pairs.jsonl", PREFERENCE_FIELDS, needed_for="the benchmark")
    peak = PeakMemory()
    if case == "grpo":
        config = settings_from_arguments(PolicyTuningConfig, values)
        peak.start()
        train_policy(config, model, None, folder / "prompts.jsonl", folder / "policy", folder / "logs", placement)
        return peak.added()
    tokenizer = load_tokenizer(model, padding_side="right")
    formatter = PromptFormatter(tokenizer, values["use_chat_template"], model)
    if case == "reward":
        config = settings_from_arguments(RewardTrainingConfig, values)
        rows = reward_training.tokenized_pairs(pairs, formatter, False)
        build = reward_training.build_trainer
    elif case == "sft":  # one epoch of STEPS batches
        config = settings_from_arguments(SupervisedTrainingConfig, values, epochs=1)
        examples = [{"prompt": pair["prompt"], "completion": pair["chosen"]} for pair in pairs]
        rows = supervised_training.tokenized_examples(examples[:STEPS * config.batch_size], formatter, config)
        build = supervised_training.build_trainer
    else:
        config = settings_from_arguments(PreferenceTuningConfig, values, steps=STEPS)
        rows, _ = training_rows(config, pairs, formatter, processes)
        build = preference_trainers.build_trainer
    longest = max(_sequence_tokens(row) for row in rows)
    print(f"{case}: longest sequence {longest} tokens", file=sys.stderr)
    peak.start()
    trainer = build(config, model, tokenizer, rows, folder / f"{case}-trainer", placement, processes, [])
    trainer.args.save_strategy = "no"
    trainer.train()
    return peak.added()


def _sequence_tokens(row) -> int:
    """The longest sequence a training row makes: a pair's prompt and longer answer, a KTO row's prompt and
    answer, an SFT example's prompt and completion."""
    if hasattr(row, "input_ids"):  # SFT's SupervisedIds: prompt and completion in one
        return len(row.input_ids)
    answers = [len(row[name]) for name in ("chosen_ids", "rejected_ids", "completion_ids") if name in row]
    return len(row.get("prompt_ids", [])) + max(answers)


def planned(case: str, model: str, folder: Path, processes: int) -> int:
    """The plan's total for the case's step on the CPU, per process (sharded when there are several)."""
    from cli.memory_plan.fit import Device, plan_for

    values = {**SETTINGS, "large_model_reference": model, "prompt_dataset": "p", "preference_dataset": "p",
              "reward_function": f"{folder / 'reward.py'}:length", "accelerator_count": processes,
              "sharding": "fsdp" if processes > 1 else "none"}
    values["algorithm"] = ALGORITHMS[case]
    if case in ("grpo", "sft"):
        values["preference_dataset"] = ""  # the rule reward alone: no reward model
    if case == "sft":
        values["sft_dataset"] = "p"
    plans = plan_for(values, Device("CPU RAM", 1 << 40, on_gpu=False, vertex=False))
    return next(plan for plan in plans if plan.step.startswith(STEP_NAMES[case])).total


def tiny_summarizer(folder: Path) -> str:
    from embedded_default.tiny_model import build_tiny_model

    return str(build_tiny_model(folder / "tiny-summarizer", progress=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("smollm2", "tiny", "both"), default="both")
    parser.add_argument("--case", choices=CASES, action="append", help="repeatable; default: all of them")
    parser.add_argument("--sharded-processes", type=int, default=1, metavar="N",
                        help="run each case in N processes with sharding fsdp (default 1: one process, unsharded)")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "MODEL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, model, folder = args.child
        print(json.dumps({"added": run_case(case, model, Path(folder), args.sharded_processes > 1)}), flush=True)
        return 0
    from benchmarks.smollm2 import DEFAULT_CACHE, converted_smollm2

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        models = []
        if args.model in ("tiny", "both"):
            models.append(("tiny-summarizer", tiny_summarizer(folder)))
        if args.model in ("smollm2", "both"):
            converted_smollm2()
            models.append(("SmolLM2-135M", str(DEFAULT_CACHE)))
        for label, model in models:
            data = folder / f"data-{label}"
            data.mkdir()
            write_data(model, data)
            for case in args.case or CASES:
                launcher = [sys.executable]
                if args.sharded_processes > 1:
                    launcher += ["-m", "torch.distributed.run", f"--nproc-per-node={args.sharded_processes}"]
                child = subprocess.run([*launcher, __file__, "--child", case, model, str(data),
                                        f"--sharded-processes={args.sharded_processes}"],
                                       capture_output=True, text=True, cwd=REPO)
                if child.returncode:
                    print(child.stderr[-3000:], file=sys.stderr)
                    return 1
                measured = max(json.loads(line)["added"] for line in child.stdout.splitlines()
                               if line.startswith('{"added"'))  # the largest process
                plan = planned(case, model, data, args.sharded_processes)
                print(f"{label} {case}: measured {measured / 2**20:.0f} MiB, planned {plan / 2**20:.0f} MiB, "
                      f"planned / measured {plan / measured:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
