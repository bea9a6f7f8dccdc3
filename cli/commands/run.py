"""`rlhf-pipeline run`: the whole DAG on this machine, through kfp.local.

Before any stage starts, the parameters, the datasets (as validate-data reads them), the model
references and the memory plan (cli/memory_plan/: every training step must fit this machine's GPU or
RAM) are checked: bad input fails in seconds with one line. Then one line per stage as it
starts and ends (cached or not, how long it took), a progress line for the long ones, and the
results; every stage's full output is in `<run dir>/logs/`. `--verbose` shows kfp's whole stream.
"""

import sys
from pathlib import Path

from cli.commands.parameter_values import add_parameter_value_options
from cli.local_run import RUNNERS, LocalRunConfig, sample_tasks


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally (the embedded sample task when no dataset is given)",
        description="Runs every stage of the pipeline on this machine with kfp.local. With no "
        "preference_dataset or prompt_dataset given, runs the embedded sample task. Prints one line "
        "per stage and the results; each stage's full output goes to <run dir>/logs/<stage>.log. "
        "`rlhf-pipeline params` lists the pipeline parameters that --params and --set take.",
    )
    add_parameter_value_options(parser)
    parser.add_argument("--sample-task", choices=list(sample_tasks()), default=None,
                        help="run a bundled sample task: summaries (the default when no dataset is given: "
                        "PPO against a reward model) or arithmetic (GRPO on word problems with the "
                        "boxed-answer reward); --params and --set values go on top")
    parser.add_argument("--runner", choices=RUNNERS, default="subprocess",
                        help="kfp.local runner: subprocess (default, no Docker) or docker")
    parser.add_argument("--output-dir", type=Path, default=LocalRunConfig.output_dir,
                        help="where run directories and the local cache go (default: rlhf-runs)")
    parser.add_argument("--no-cache", action="store_true", help="run every step even if a cached result exists")
    parser.add_argument("--image", default=LocalRunConfig.image, help="component image for --runner docker")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything, then print the stages a run would execute and those the cache "
                        "would give, without running any or making a run directory")
    parser.add_argument("--verbose", action="store_true",
                        help="print kfp's and every stage's full output as it comes (it is in the logs either way)")
    parser.set_defaults(func=main)


def print_results(result) -> None:
    from components.evaluate.report_content import format_share, reward_model_estimate, section_estimate

    reward_model, policy = result.summary["reward_model"], result.summary["policy"]
    print(f"algorithm: {result.summary['algorithm']}")
    if reward_model["eval_accuracy"] is None:
        print("reward model: none trained")
    else:
        print(f"reward model eval accuracy: {reward_model_estimate(reward_model, 'eval_accuracy')}")
        print(f"mean reward: base {reward_model_estimate(policy, 'base_mean_reward')} "
              f"-> tuned {reward_model_estimate(policy, 'tuned_mean_reward')}; "
              f"win rate {reward_model_estimate(policy, 'win_rate')}")
    if policy["base_gold_score"] is not None:
        print(f"gold score: base {section_estimate(policy, 'base_gold_score')} "
              f"-> tuned {section_estimate(policy, 'tuned_gold_score')}")
    if policy["implicit_reward_pairs"]:
        print(f"implicit-reward accuracy of tuned vs base ({policy['implicit_reward_pairs']} held-out pairs): "
              f"{section_estimate(policy, 'implicit_reward_accuracy')}")
    if policy["accuracy_rows_scored"] is not None:
        print(f"accuracy (rule reward, {policy['accuracy_rows_scored']} of {policy['eval_prompts']} prompts): "
              f"sampled base {section_estimate(policy, 'base_accuracy')} "
              f"-> tuned {section_estimate(policy, 'tuned_accuracy')}; "
              f"greedy base {section_estimate(policy, 'base_accuracy_greedy')} "
              f"-> tuned {section_estimate(policy, 'tuned_accuracy_greedy')}")
    print(f"KL to base {policy['kl_to_base']:.3f}; responses cut at the length limit: base "
          f"{format_share(policy['base_truncated_fraction'])}, tuned {format_share(policy['tuned_truncated_fraction'])}")
    if warning := result.summary.get("tuning", {}).get("warning"):
        print(f"warning: no learning: {warning}")
    print(f"run directory: {result.run_dir}")
    print(f"summary: {result.summary_path}")
    print(f"report: {result.summary['paths']['report_html']}")


def print_plan(stages: list[dict], task: str | None, config) -> int:
    from cli.local_run import CACHE_DIR

    cached = sum(stage["status"] == "cached" for stage in stages)
    print(f"dry run{f' of sample task {task}' if task else ''}: {len(stages) - cached} of {len(stages)} stages "
          f"would run, {cached} come from the cache in {config.output_dir / CACHE_DIR}; nothing ran")
    return 0


def main(args) -> int:
    from cli.console import PlanConsole, make_console
    from cli.fingerprint import data_fingerprints
    from cli.local_run import (
        RunFailed,
        check_runner,
        local_parameter_values,
        new_run_dir,
        plan_locally,
        run_locally,
        steps_per_run,
    )
    from cli.memory_plan.fit import check_memory, local_device
    from cli.preflight import check_before_run

    values, task = local_parameter_values(args.params, args.sets, args.sample_task)
    config = LocalRunConfig(
        runner=args.runner, output_dir=args.output_dir, enable_caching=not args.no_cache, image=args.image
    )
    check_runner(config)
    checks = check_before_run(values)
    check_memory(values, local_device(), note=lambda line: print(line, file=sys.stderr))
    values.update(data_fingerprints(values))
    for line in checks.checked:
        print(line)
    for line in checks.warnings:
        print(line, file=sys.stderr)
    try:
        if args.dry_run:
            return print_plan(plan_locally(values, config, PlanConsole()), task, config)
        run_dir = new_run_dir(config.output_dir)
        print(f"{f'sample task {task}: ' if task else ''}{steps_per_run(config.image)} stages, "
              f"run directory {run_dir}{'' if config.enable_caching else ' (cache off)'}", flush=True)
        result = run_locally(values, config, make_console(args.verbose), run_dir=run_dir)
    except RunFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        print(f"full log: {failure.log_path}", file=sys.stderr)
        return 1
    print_results(result)
    return 0
