"""The options by which `run`, `plan` and `submit` take pipeline parameter values: --params and --set."""


def add_parameter_value_options(parser) -> None:
    """--params FILE and --set NAME=VALUE (repeatable, over --params), read by
    cli.submission.parameter_file.load_parameter_values."""
    parser.add_argument("--params", metavar="FILE", help="YAML or JSON file of pipeline parameter values")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
        help="set one pipeline parameter (repeatable; overrides --params); `rlhf-pipeline params` lists them",
    )
