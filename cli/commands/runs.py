"""`rlhf-pipeline runs`: the local run directories, and removing old ones with their cache entries."""

from pathlib import Path

from cli.local_run import LocalRunConfig


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list local runs (status, algorithm, headline figure, size, cached from); remove old ones",
        description="Lists the run directories of `rlhf-pipeline run`, oldest first: status, algorithm, "
        "headline figure, size on disk and the runs whose cached outputs each reuses. Every run directory "
        "holds what its summary.json names, so removing a run never breaks another; its cache entries go "
        "with it, and the next run with the same inputs runs those stages again.",
    )
    parser.add_argument("--output-dir", type=Path, default=LocalRunConfig.output_dir,
                        help="where `run` put them (default: rlhf-runs)")
    parser.add_argument("--remove", nargs="+", default=[], metavar="RUN",
                        help="remove these runs (directory names, as listed) and their cache entries")
    parser.add_argument("--keep-newest", type=int, metavar="N",
                        help="remove every run but the N newest, with their cache entries")
    parser.set_defaults(func=main)


def main(args) -> int:
    from cli.run_directories import format_size, list_runs, remove_run, runs_table, runs_to_remove

    runs = list_runs(args.output_dir)
    if args.remove or args.keep_newest is not None:
        chosen = runs_to_remove(runs, args.remove, args.keep_newest)
        for run in chosen:
            entries = remove_run(args.output_dir, run)
            print(f"removed {run.name} ({format_size(run.size_bytes)}) and {entries} cache entries")
        if not chosen:
            print(f"nothing to remove: {len(runs)} run(s) in {args.output_dir}")
        return 0
    if not runs:
        print(f"no runs in {args.output_dir}")
        return 0
    print(runs_table(runs))
    return 0
