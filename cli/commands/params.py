"""`rlhf-pipeline params`: every pipeline parameter with its type, default, allowed values and description."""

from pipeline.parameters import PARAMETERS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "params",
        help="list the pipeline's parameters (type, default, allowed values, description)",
        description=f"Lists the pipeline's {len(PARAMETERS)} parameters, the values that `run --params`, "
        "`run --set` and `submit` take: type, default, the values allowed and the description the "
        "pipeline UI shows.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="show only these parameters")
    parser.add_argument("--write-defaults", metavar="FILE",
                        help="write a YAML parameter file with every parameter at its default and its "
                        "description as a comment, to edit and pass to `run --params FILE`")
    parser.set_defaults(func=main)


def main(args) -> int:
    from cli.parameter_help import describe, selected, write_defaults_file

    if args.write_defaults:
        path = write_defaults_file(args.write_defaults)
        print(f"wrote {path}: {len(PARAMETERS)} parameters at their defaults; fill in the required ones")
        return 0
    print(describe(selected(args.names)))
    return 0
