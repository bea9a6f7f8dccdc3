r"""How well a model answers the arithmetic task, and a check that GRPO with `boxed-answer` improves it.

    OMP_NUM_THREADS=1 python -m embedded_default.arithmetic.check [--work-dir DIR] [--steps N] ...

(one thread is the fastest setting for a model this small, on a machine whose cores are shared.)

builds `builtin:tiny-arithmetic`, prepares the task's prompts with the prompt-data stage, tunes the model
with the policy stage's engine (GRPO, reward function `boxed-answer`, no reward model) and prints the
held-out accuracy of the base and tuned models, greedy and sampled, with the seconds each part took.
"""

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from components.common.data.answers import last_boxed
from components.common.reward_functions import boxed_answer

MAX_NEW_TOKENS = 16
MAX_PROMPT_TOKENS = 64


@dataclass(frozen=True)
class Accuracy:
    accuracy: float  # share of replies whose last \boxed{} gives the ground truth (boxed-answer's reward)
    boxed: float  # share of replies with a complete \boxed{}


def read_prompt_rows(path: str | Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@torch.no_grad()
def measure(model_dir: str | Path, rows: list[dict], greedy: bool, seed: int = 0,
            batch_size: int = 100) -> Accuracy:
    """Accuracy of the model at `model_dir` on prompt rows ({"prompt": messages, "ground_truth": ...}),
    the prompts rendered with its chat template as every stage renders them."""
    from transformers import AutoModelForCausalLM

    from components.common.chat_templates import PromptFormatter
    from components.common.data.transcripts import Message, Prompt
    from components.common.generation import generate_responses
    from components.common.models import load_tokenizer

    tokenizer = load_tokenizer(str(model_dir), padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    formatter = PromptFormatter(tokenizer, "true", str(model_dir))
    texts = [formatter.prompt(Prompt(m[-1]["content"], tuple(Message(x["role"], x["content"]) for x in m)))
             for m in (row["prompt"] for row in rows)]
    torch.manual_seed(seed)
    replies = []
    for start in range(0, len(texts), batch_size):
        batch = generate_responses(model, tokenizer, texts[start:start + batch_size], max_new_tokens=MAX_NEW_TOKENS,
                                   max_prompt_tokens=MAX_PROMPT_TOKENS, greedy=greedy)
        replies += batch.texts
    rewards = boxed_answer(replies, [row["ground_truth"] for row in rows])
    return Accuracy(sum(rewards) / len(rows), sum(last_boxed(r) is not None for r in replies) / len(rows))


def measure_both(model_dir, rows, seed: int = 0) -> dict[str, float]:
    greedy, sampled = measure(model_dir, rows, True, seed), measure(model_dir, rows, False, seed)
    return {"greedy": greedy.accuracy, "sampled": sampled.accuracy, "greedy_boxed": greedy.boxed,
            "sampled_boxed": sampled.boxed}


def prepare_prompts(prompt_file: str | Path, model_dir: str | Path, output_dir: str | Path, params: dict) -> Path:
    """The canonical training prompt rows the prompt-data stage writes for `prompt_file`."""
    from components.prepare_prompt_data.stage import PromptDataConfig, run

    config = PromptDataConfig(prompt_dataset=str(prompt_file), prompt_sequence_length=params["prompt_sequence_length"],
                              batch_size=params["batch_size"], algorithm=params["algorithm"],
                              num_generations=params["num_generations"], eval_split_fraction=0.0)
    output = Path(output_dir)
    run(config, str(model_dir), output, output / "report.md")
    return output / "train.jsonl"


def tune(model_dir, prompts_path, output_dir, params: dict, steps: int, seed: int = 0) -> dict[str, float]:
    """GRPO with the `boxed-answer` reward (no reward model), as the policy stage runs it with `params`."""
    from components.tune_policy.config import PPOConfig
    from components.tune_policy.ppo import train_policy

    config = PPOConfig(
        steps=steps, algorithm=params["algorithm"], num_generations=params["num_generations"],
        reward_function=params["reward_function"], batch_size=params["batch_size"],
        minibatch_size=params["ppo_minibatch_size"], ppo_epochs=params["ppo_epochs"],
        learning_rate_multiplier=params["reinforcement_learning_rate_multiplier"], kl_coeff=params["kl_coeff"],
        max_new_tokens=params["target_sequence_length"], max_prompt_tokens=params["prompt_sequence_length"],
        lora_rank=params["policy_lora_rank"], seed=seed,
    )
    output = Path(output_dir)
    return train_policy(config, str(model_dir), None, prompts_path, output / "policy", output / "logs")


def main(argv: list[str] | None = None) -> None:
    from embedded_default.arithmetic import EVAL_FILE, PROMPT_FILE, load_params
    from embedded_default.arithmetic.tiny_model import build_tiny_arithmetic_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("arithmetic-check"))
    parser.add_argument("--steps", type=int, default=0,
                        help="GRPO steps (default: params.yaml's reinforcement_learning_train_steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-build", action="store_true", help="reuse WORK_DIR/base")
    args = parser.parse_args(argv)
    params = load_params()
    work = args.work_dir
    timings = {}
    started = time.perf_counter()
    if not args.skip_build:
        build_tiny_arithmetic_model(work / "base", seed=args.seed)
    timings["build_s"] = time.perf_counter() - started
    evals = read_prompt_rows(EVAL_FILE)
    base = measure_both(work / "base", evals, args.seed)
    print("base:", json.dumps(base))
    prompts = prepare_prompts(PROMPT_FILE, work / "base", work / "prompts", params)
    steps = args.steps or params["reinforcement_learning_train_steps"]
    started = time.perf_counter()
    metrics = tune(work / "base", prompts, work / "tuned", params, steps, args.seed)
    timings["tune_s"] = time.perf_counter() - started
    tuned = measure_both(work / "tuned" / "policy", evals, args.seed)
    print("tuned:", json.dumps(tuned))
    result = {"base": base, "tuned": tuned, "steps": steps, "seconds": {k: round(v, 1) for k, v in timings.items()},
              "final_metrics": metrics}
    (work / "check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["seconds"]))


if __name__ == "__main__":
    main()
