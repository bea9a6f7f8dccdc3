"""The `rlhf-pipeline` command: run, runs, chat, params, validate-data, plan, submit, steps."""

import argparse
import sys

from components.common.errors import UserInputError
from cli.commands import chat, params, plan, run, runs, steps, submit, validate_data

COMMANDS = (run, runs, chat, params, validate_data, plan, submit, steps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-pipeline",
        description="RLHF on Kubeflow Pipelines and Vertex AI: run locally, list and remove runs, chat with a tuned policy, list the parameters, validate data, plan memory, submit, derive steps.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
