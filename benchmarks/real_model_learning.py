"""Does a real model learn? GRPO, the reward model and DPO on SmolLM2-135M-Instruct with real data, and
GRPO side by side with TRL's GRPOTrainer.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/real_model_learning.py [--case grpo trl-grpo reward-model dpo]
        [--data-dir ../shared/data] [--work-dir rlhf-runs/real-model-learning] [--grpo-steps 24] ...

Not part of the test suite: on 2 CPU cores each case takes about an hour or more. Cases (default: all):

- `grpo`: the pipeline's GRPO (`rlhf-pipeline run`, a parameter file written into the work folder) on
  generated one-step word problems (answers 0..20, the arithmetic sample task's generator) in GSM8K's
  layout, with the GSM8K notebooks' system prompt (`system_prompt`) and the verifiable reward
  `benchmarks/final_answer_reward.py:final_answer_reward`; held-out problems (200 by default).
- `trl-grpo`: TRL 1.16's GRPOTrainer on the same prompts (read by the pipeline's data layer, system prompt
  included), reward function, generations, lengths, learning rate, beta, LoRA, steps and seed; its tuned
  model is evaluated by the pipeline's evaluation code, so its figures compare one to one.
- `reward-model` and `dpo`: one `rlhf-pipeline run` with `algorithm: dpo` on Anthropic HH harmless pairs
  (a fixed split, `learning_tasks.hh_split`: 300 held out): the reward model's held-out accuracy
  (`train_reward_model_for_eval`, only when `reward-model` is asked for), and DPO's implicit-reward
  accuracy on the same held-out pairs and its KL to base, at the policy's `--learning-rate`. With
  `reward-model` alone, DPO takes one step.

For both GRPO cases the accuracy is also measured as the mean over `--samples` sampled answers per held-out
problem (the pipeline's evaluation samples once), with paired 95% bootstrap intervals. Writes
`real_model_learning.json` (settings and every figure) and `real_model_learning.md` (a table) into the work
folder and prints where they are.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.learning_figures import interval_text, write_results  # noqa: E402
from benchmarks.learning_tasks import (  # noqa: E402
    HH_FILE,
    MATH_SYSTEM_PROMPT,
    arithmetic_problems,
    hh_split,
    read_jsonl_gz,
    write_jsonl,
)
from benchmarks.smollm2 import DEFAULT_CACHE, converted_smollm2  # noqa: E402
from components.common import defaults  # noqa: E402
from components.common.vllm_rollouts import AUTO, ROLLOUT_ENGINES  # noqa: E402

CASES = ("grpo", "trl-grpo", "reward-model", "dpo")
REWARD_FUNCTION = f"{REPO / 'benchmarks' / 'final_answer_reward.py'}:final_answer_reward"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work-dir", type=Path, default=REPO / "rlhf-runs" / "real-model-learning")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_CACHE, help="the converted SmolLM2 folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rollout-engine", choices=ROLLOUT_ENGINES, default=AUTO,
                        help="the pipeline's rollout_engine in every run, and the engine of the k-sample accuracy "
                             "(auto: vLLM where installed); TRL's GRPOTrainer generates with transformers")
    math = parser.add_argument_group("GRPO cases")
    math.add_argument("--train-problems", type=int, default=2000)
    math.add_argument("--held-out-problems", type=int, default=200)
    math.add_argument("--grpo-steps", type=int, default=36,
                      help="about 1.1 min each for ours, 1.5 min for TRL's, each on one of 2 cores")
    math.add_argument("--prompts-per-step", type=int, default=4)
    math.add_argument("--generations", type=int, default=4, help="responses per prompt")
    math.add_argument("--max-new-tokens", type=int, default=128)
    math.add_argument("--max-prompt-tokens", type=int, default=128)
    math.add_argument("--learning-rate", type=float, default=2e-4, help="the policy's learning rate in GRPO, both engines (LoRA)")
    math.add_argument("--beta", type=float, default=0.04, help="KL coefficient (kl_coeff; TRL's beta)")
    math.add_argument("--lora-rank", type=int, default=16)
    math.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of training and eval")
    math.add_argument("--samples", type=int, default=4, help="sampled answers per held-out problem")
    pairs = parser.add_argument_group("reward-model and DPO cases")
    pairs.add_argument("--train-pairs", type=int, default=480)
    pairs.add_argument("--max-chars", type=int, default=600, help="longest chosen/rejected transcript kept")
    pairs.add_argument("--reward-epochs", type=int, default=1)
    pairs.add_argument("--reward-batch-size", type=int, default=16)
    pairs.add_argument("--reward-lora-rank", type=int, default=16)
    pairs.add_argument("--reward-lr-multiplier", type=float, default=5.0, help="of the reward model's 1e-4")
    pairs.add_argument("--dpo-steps", type=int, default=26)
    pairs.add_argument("--dpo-learning-rate", type=float, default=5e-4, help="the policy's learning rate in DPO (LoRA)")
    pairs.add_argument("--pair-max-tokens", type=int, default=160, help="prompt_sequence_length of the pair cases")
    pairs.add_argument("--answer-max-tokens", type=int, default=64, help="target_sequence_length of the pair cases")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------------ running the pipeline


def run_pipeline(name: str, parameters: dict, work: Path) -> tuple[dict, dict[str, float]]:
    """`rlhf-pipeline run` with `parameters` (a parameter file per case); its summary.json and each stage's seconds."""
    params = work / f"{name}.params.json"  # JSON is YAML: the parameter file reader takes it
    params.write_text(json.dumps(parameters, indent=2) + "\n")
    log = work / f"{name}.log"
    command = [sys.executable, "-m", "cli", "run", "--params", str(params), "--output-dir", str(work / "runs"),
               "--no-cache"]
    print(f"[{name}] {' '.join(command)} (log: {log})", flush=True)
    with open(log, "w", encoding="utf-8") as handle:
        result = subprocess.run(command, cwd=REPO, env={**os.environ, **OFFLINE_ENV}, stdout=handle,
                                stderr=subprocess.STDOUT)
    lines = log.read_text(encoding="utf-8").splitlines()
    if result.returncode != 0:
        raise SystemExit(f"[{name}] the run failed; the end of {log}:\n" + "\n".join(lines[-15:]))
    summary_path = Path(next(line for line in reversed(lines) if line.startswith("summary: ")).removeprefix("summary: "))
    stages = json.loads((summary_path.parent / "stages.json").read_text())
    return json.loads(summary_path.read_text()), {stage["task"]: stage["seconds"] for stage in stages}


def canonical_prompts(source: Path, target: Path) -> Path:
    """The prompt rows of `source` as the pipeline's data stages write them (system prompt added)."""
    from components.common.data.loading import PROMPT, DataSettings, load_dataset

    rows = load_dataset(str(source), PROMPT, DataSettings(system_prompt=MATH_SYSTEM_PROMPT)).examples
    return write_jsonl(target, [row.to_json() for row in rows])


# ------------------------------------------------------------------------------------------ accuracy, k samples


def sampled_accuracy(base: str, tuned: str, eval_rows: Path, args) -> dict:
    """Accuracy as the mean over `args.samples` sampled answers per held-out problem, for both policies,
    with the evaluation's sampling and reward-function code, and paired bootstrap intervals."""
    import torch

    from components.common.models import Placement, load_causal_lm
    from components.common.reward_functions import load_reward_function
    from components.common.uncertainty import bootstrap_mean_intervals
    from components.evaluate.accuracy import rule_rewards
    from components.evaluate.config import EvaluationConfig
    from components.evaluate.eval_data import read_eval_prompt_rows
    from components.evaluate.evaluation import evaluation_engine
    from components.evaluate.policy_samples import sample_policy

    reward = load_reward_function(REWARD_FUNCTION)
    rows = read_eval_prompt_rows(eval_rows, len(eval_rows.read_text().splitlines()), args.seed)
    placement = Placement.detect()
    settings = dict(max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens,
                    temperature=args.temperature, rollout_engine=args.rollout_engine)
    engine = evaluation_engine(EvaluationConfig(**settings, seed=args.seed), tuned, placement)
    means = {}
    for name, source in (("base", base), ("tuned", tuned)):
        model, formatter = load_causal_lm(source, placement, "auto")
        if engine is not None:
            engine.load_weights(model)
        per_sample = []
        for sample in range(args.samples):
            config = EvaluationConfig(**settings, seed=args.seed + sample)
            samples = sample_policy(model, formatter, [row.prompt for row in rows], config, f"{name} sample {sample}",
                                    engine)
            per_sample.append(rule_rewards(reward, rows, samples, formatter.templated))
        means[name] = torch.tensor(per_sample).mean(dim=0).tolist()
        del model
    gain = [t - b for b, t in zip(means["base"], means["tuned"])]
    intervals = bootstrap_mean_intervals([means["base"], means["tuned"], gain], args.seed)
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    return {"samples": args.samples, "problems": len(rows),
            "base": mean(means["base"]), "base_ci": intervals[0], "tuned": mean(means["tuned"]),
            "tuned_ci": intervals[1], "gain": mean(gain), "gain_ci": intervals[2]}


def grpo_figures(policy: dict, accuracy: dict, steps: int, seconds: float) -> dict:
    """A GRPO case's row: the k-sample accuracy headline and the evaluation's figures."""
    return {
        "headline": (f"accuracy, {accuracy['samples']} samples: {interval_text(accuracy['base'], accuracy['base_ci'])}"
                     f" -> {interval_text(accuracy['tuned'], accuracy['tuned_ci'])}; gain "
                     f"{interval_text(accuracy['gain'], accuracy['gain_ci'])}; greedy "
                     f"{interval_text(policy['base_accuracy_greedy'], policy['base_accuracy_greedy_ci'])} -> "
                     f"{interval_text(policy['tuned_accuracy_greedy'], policy['tuned_accuracy_greedy_ci'])}"),
        "accuracy_samples": accuracy,
        "evaluation": policy,
        "kl_to_base": policy["kl_to_base"],
        "tuned_response_tokens": policy["tuned_mean_response_tokens"],
        "base_ended_with_eos": 1 - policy["base_truncated_fraction"],
        "tuned_ended_with_eos": 1 - policy["tuned_truncated_fraction"],
        "training_seconds": seconds,
        "seconds_per_step": seconds / steps,
        "steps": steps,
    }


# ------------------------------------------------------------------------------------------ the cases


def math_data(args, work: Path) -> tuple[Path, Path]:
    train, held_out = arithmetic_problems(args.train_problems, args.held_out_problems, args.seed)
    return write_jsonl(work / "data" / "math-train.jsonl", train), write_jsonl(work / "data" / "math-eval.jsonl", held_out)


def grpo_parameters(args, train: Path, held_out: Path) -> dict:
    responses = args.prompts_per_step * args.generations
    return {
        "large_model_reference": str(args.model_dir), "prompt_dataset": str(train), "eval_dataset": str(held_out),
        "preference_dataset": "", "reward_function": REWARD_FUNCTION, "system_prompt": MATH_SYSTEM_PROMPT,
        "algorithm": "grpo", "num_generations": args.generations, "batch_size": responses,
        "ppo_minibatch_size": responses, "ppo_epochs": 1, "reinforcement_learning_train_steps": args.grpo_steps,
        "reinforcement_learning_rate_multiplier": args.learning_rate / defaults.POLICY_BASE_LEARNING_RATE, "kl_coeff": args.beta,
        "policy_lora_rank": args.lora_rank, "sampling_temperature": args.temperature,
        "prompt_sequence_length": args.max_prompt_tokens, "target_sequence_length": args.max_new_tokens,
        "missing_eos_penalty": 0.0, "max_eval_prompts": args.held_out_problems, "seed": args.seed,
        "rollout_engine": args.rollout_engine, "deploy_model": False,
    }


def run_grpo(args, work: Path) -> dict:
    train, held_out = math_data(args, work)
    summary, seconds = run_pipeline("grpo", grpo_parameters(args, train, held_out), work)
    accuracy = sampled_accuracy(str(args.model_dir), summary["paths"]["policy"],
                                canonical_prompts(held_out, work / "data" / "math-eval.canonical.jsonl"), args)
    figures = grpo_figures(summary["policy"], accuracy, args.grpo_steps, seconds["tune-policy"])
    return {**figures, "tuning": summary["tuning"], "run_directory": str(Path(summary["paths"]["policy"]).parent)}


def trl_grpo_config(args, out: Path):
    """TRL's GRPOConfig at the GRPO case's settings: the pipeline's loss, clip, KL, schedule and sampling."""
    from trl import GRPOConfig

    responses = args.prompts_per_step * args.generations
    return GRPOConfig(
        output_dir=str(out / "trainer"), max_steps=args.grpo_steps, per_device_train_batch_size=responses,
        gradient_accumulation_steps=1, num_generations=args.generations, num_iterations=1,
        max_completion_length=args.max_new_tokens, learning_rate=args.learning_rate, lr_scheduler_type="linear",
        warmup_steps=int(0.05 * args.grpo_steps),  # the pipeline's warm-up (tune_policy config, warmup_fraction)
        beta=args.beta, epsilon=0.2, loss_type="dapo", scale_rewards="group", mask_truncated_completions=False,
        # TRL defaults that would change the work, set to the pipeline's (as rl_step_benchmark.py does)
        gradient_checkpointing=False, top_k=0, top_p=1.0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        temperature=args.temperature, seed=args.seed, use_cpu=True, bf16=False, report_to="none", logging_steps=1,
        save_strategy="no", dataloader_num_workers=0,
    )


def run_trl_grpo(args, work: Path) -> dict:
    """TRL's GRPOTrainer at the GRPO case's settings, evaluated by the pipeline's evaluation."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from benchmarks.final_answer_reward import final_answer_reward
    from components.evaluate.config import EvaluationConfig
    from components.evaluate.evaluation import EvaluationOutputs, run_evaluation

    train, held_out = math_data(args, work)
    rows = [json.loads(line) for line in canonical_prompts(train, work / "data" / "math-train.canonical.jsonl")
            .read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": row["prompt_messages"], **row["columns"]} for row in rows])
    torch.manual_seed(args.seed)
    out = work / "trl-grpo"
    config = trl_grpo_config(args, out)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, padding_side="left")
    peft = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, lora_dropout=0.0, target_modules="all-linear",
                      bias="none", task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=str(args.model_dir), reward_funcs=final_answer_reward, args=config,
                          train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(out / "policy")
    tokenizer.save_pretrained(out / "policy")
    AutoModelForCausalLM.from_pretrained(out / "policy")  # it loads as the evaluation will load it
    eval_rows = canonical_prompts(held_out, work / "data" / "math-eval.canonical.jsonl")
    result = run_evaluation(
        EvaluationConfig(max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens,
                         temperature=args.temperature, max_eval_prompts=args.held_out_problems,
                         reward_function=REWARD_FUNCTION, seed=args.seed, num_generations=args.generations,
                         rollout_engine=args.rollout_engine),
        base_source=str(args.model_dir), tuned_source=str(out / "policy"), reward_source=None, eval_pairs_path=None,
        eval_prompts_path=eval_rows, reward_logs_dir=None, policy_logs_dir=None,
        outputs=EvaluationOutputs(out / "report.html", out / "report.md", out / "predictions", out / "evaluation.json"),
    )
    accuracy = sampled_accuracy(str(args.model_dir), str(out / "policy"), eval_rows, args)
    return {**grpo_figures(result.evaluation["policy"], accuracy, args.grpo_steps, seconds),
            "tuning": result.evaluation["tuning"], "trl_log": trainer.state.log_history[-3:]}


def pairs_parameters(args, train: Path, held_out: Path, cases: list[str]) -> dict:
    """The pair cases' parameter file: DPO at `--dpo-learning-rate`; the reward model trained only for
    its own case (with `reward-model` alone, DPO takes one step)."""
    return {
        "large_model_reference": str(args.model_dir), "preference_dataset": str(train), "prompt_dataset": str(train),
        "eval_dataset": str(held_out), "algorithm": "dpo", "train_reward_model_for_eval": "reward-model" in cases,
        "reward_model_train_epochs": args.reward_epochs, "batch_size": args.reward_batch_size,
        "reward_model_lora_rank": args.reward_lora_rank, "reward_model_learning_rate_multiplier": args.reward_lr_multiplier,
        "reinforcement_learning_train_steps": args.dpo_steps if "dpo" in cases else 1,
        "reinforcement_learning_rate_multiplier": args.dpo_learning_rate / defaults.POLICY_BASE_LEARNING_RATE,
        "policy_lora_rank": args.lora_rank, "prompt_sequence_length": args.pair_max_tokens,
        "target_sequence_length": args.answer_max_tokens, "length_policy": "drop",
        "max_eval_prompts": 50 if "dpo" in cases else 8, "seed": args.seed, "rollout_engine": args.rollout_engine,
        "deploy_model": False,
    }


def run_pairs(args, work: Path, cases: list[str]) -> dict[str, dict]:
    """The reward-model and DPO cases: one `algorithm: dpo` run (see `pairs_parameters`)."""
    split = hh_split(read_jsonl_gz(args.data_dir / HH_FILE), args.train_pairs, args.max_chars)
    print(f"[pairs] HH split: {split.rule}", flush=True)
    train = write_jsonl(work / "data" / "hh-train.jsonl", split.train)
    held_out = write_jsonl(work / "data" / "hh-held-out.jsonl", split.held_out)
    parameters = pairs_parameters(args, train, held_out, cases)
    dpo_steps = parameters["reinforcement_learning_train_steps"]
    summary, seconds = run_pipeline("pairs", parameters, work)
    reward_model, policy = summary.get("reward_model"), summary["policy"]
    results = {}
    if "reward-model" in cases:
        results["reward-model"] = {
            "headline": (f"held-out accuracy {interval_text(reward_model['eval_accuracy'], reward_model['eval_accuracy_ci'])}"
                         f" on {reward_model['eval_pairs']} pairs"),
            "reward_model": reward_model, "split": split.rule, "training_seconds": seconds["train-reward-model"],
            "steps": summary["steps"]["reward_model_train_steps"],
            "seconds_per_step": seconds["train-reward-model"] / summary["steps"]["reward_model_train_steps"],
        }
    if "dpo" in cases:
        results["dpo"] = {
            "headline": (f"implicit-reward accuracy {interval_text(policy['implicit_reward_accuracy'], policy['implicit_reward_accuracy_ci'])}"
                         f" on {policy['implicit_reward_pairs']} held-out pairs"),
            "evaluation": policy, "split": split.rule, "kl_to_base": policy["kl_to_base"],
            "tuned_response_tokens": policy["tuned_mean_response_tokens"],
            "tuned_ended_with_eos": 1 - policy["tuned_truncated_fraction"],
            "training_seconds": seconds["tune-preference"], "steps": dpo_steps,
            "seconds_per_step": seconds["tune-preference"] / dpo_steps, "tuning": summary["tuning"],
        }
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    converted_smollm2(args.model_dir)  # converts it once, when the folder does not hold it yet
    args.model_dir = args.model_dir.resolve()
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cases = [case for case in CASES if case in args.case]
    results: dict[str, dict] = {}
    json_path = markdown_path = None
    runners = {"grpo": run_grpo, "trl-grpo": run_trl_grpo}
    for case in cases:
        if case in results:
            continue
        start = time.perf_counter()
        if case in runners:
            results[case] = runners[case](args, work)
        else:
            results.update(run_pairs(args, work, cases))
        print(f"[{case}] done in {time.perf_counter() - start:.0f} s: {results.get(case, {}).get('headline')}", flush=True)
        json_path, markdown_path = write_results(results, {k: str(v) for k, v in vars(args).items()}, work)
    print(f"figures: {json_path}\ntable: {markdown_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
