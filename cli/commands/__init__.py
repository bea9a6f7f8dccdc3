"""One module per `rlhf-pipeline` subcommand, each with `add_parser(subparsers)`."""
