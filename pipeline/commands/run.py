"""`rlhf-pipeline run`: the whole DAG on this machine, through kfp.local."""

from pathlib import Path

from pipeline.local_run import RUNNERS, LocalRunConfig, preflight, run_locally, with_embedded_default


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally (the embedded sample task when no dataset is given)",
        description="Runs every stage of the pipeline on this machine with kfp.local. With no "
        "preference_dataset or prompt_dataset given, runs the embedded sample task.",
    )
    parser.add_argument("--params", metavar="FILE", help="YAML or JSON file of pipeline parameter values")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
        help="set one pipeline parameter (repeatable; overrides --params)",
    )
    parser.add_argument("--runner", choices=RUNNERS, default="subprocess",
                        help="kfp.local runner: subprocess (default, no Docker) or docker")
    parser.add_argument("--output-dir", type=Path, default=LocalRunConfig.output_dir,
                        help="where run directories and the local cache go (default: rlhf-runs)")
    parser.add_argument("--no-cache", action="store_true", help="run every step even if a cached result exists")
    parser.add_argument("--image", default=LocalRunConfig.image, help="component image for --runner docker")
    parser.set_defaults(func=main)


def main(args) -> int:
    from components.evaluate.report_content import section_estimate
    from pipeline.submission.parameter_file import load_parameter_values
    from pipeline.submission.validation import validate_for_pipeline

    values = with_embedded_default(load_parameter_values(args.params, args.sets))
    values = validate_for_pipeline(values)
    preflight(values)
    config = LocalRunConfig(
        runner=args.runner, output_dir=args.output_dir, enable_caching=not args.no_cache, image=args.image
    )
    result = run_locally(values, config)
    reward_model, policy = result.summary["reward_model"], result.summary["policy"]
    print(f"reward model eval accuracy: {section_estimate(reward_model, 'eval_accuracy')}")
    print(f"mean reward: base {section_estimate(policy, 'base_mean_reward')} "
          f"-> tuned {section_estimate(policy, 'tuned_mean_reward')}")
    print(f"win rate {section_estimate(policy, 'win_rate')}; KL to base {policy['kl_to_base']:.3f}")
    print(f"responses cut at the length limit: base {policy['base_truncated_fraction']:.0%}, "
          f"tuned {policy['tuned_truncated_fraction']:.0%}")
    print(f"run directory: {result.run_dir}")
    print(f"summary: {result.summary_path}")
    print(f"report: {result.summary['paths']['report_html']}")
    return 0

