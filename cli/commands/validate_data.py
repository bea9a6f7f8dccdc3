"""`rlhf-pipeline validate-data`: check datasets in seconds, before a cloud run pays for finding out.

Reads the datasets exactly as the pipeline's data stages do (same formats, checks, books, split),
prints a summary per dataset, and exits 0 when every dataset given is usable, 1 when one is not.
`--write-normalized DIR` also writes what the trainers would read.
"""

import argparse
import sys
from pathlib import Path

from components.common.data import formats
from components.common.data.lengths import LENGTH_POLICIES, load_length_tokenizer
from components.common.data.loading import PREFERENCE, DataSettings
from components.common.data.preparation import PreparedData, prepare_preferences, prepare_prompts, write_prepared
from components.common.data.report import PERCENTILES, percentile, write_report
from components.common.errors import UserInputError
from pipeline.parameters import PARAMETERS_BY_NAME

EXIT_USABLE, EXIT_NOT_USABLE = 0, 1
REJECTS_SHOWN = 5
PREFERENCE_OUTPUT, PROMPT_OUTPUT = "preference_data", "prompt_data"


DESCRIPTION = (
    "Reads the datasets exactly as the pipeline's data stages do (same formats, checks, books, split) and "
    "prints per dataset the format, the rows used, rejected (with file, line, field and reason) and removed "
    "as duplicates, and the train/eval split. Exits 0 when every dataset given is usable, 1 when one is "
    "not, 2 on a wrong option.")


def _like_parameter(name: str, **overrides) -> dict:
    """add_argument's default and help for an option that is a pipeline parameter: the parameter
    table's default and description (pipeline/parameters.py), not a second text."""
    parameter = PARAMETERS_BY_NAME[name]
    default = overrides.pop("default", parameter.default)
    shown = f" (default: {default})" if default not in (None, "") else ""
    return {"default": default, "help": (parameter.description + shown).replace("%", "%%"), **overrides}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Registers `validate-data` on the CLI's subparsers; its `func` returns the exit code."""
    parser = subparsers.add_parser(
        "validate-data", help="check preference / prompt datasets and print what would be used",
        description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preference-dataset", metavar="PATH",
                        help="preference pairs: a file, directory, glob, gs:// URI or "
                             "hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]")
    parser.add_argument("--prompt-dataset", metavar="PATH", help="prompts for the reinforcement-learning stage")
    parser.add_argument("--eval-dataset", metavar="PATH", help="held-out preference pairs or prompts")
    parser.add_argument("--format", choices=[formats.AUTO, *formats.PREFERENCE_FORMATS],
                        **_like_parameter("dataset_format"))
    parser.add_argument("--tokenizer", metavar="NAME_OR_PATH",
                        help="tokenizer (hub id or local directory) for the token-length checks; "
                             "without it lengths are not checked")
    parser.add_argument("--write-normalized", metavar="DIR",
                        help=f"write the canonical train/eval JSONL, rejects and books to DIR/{PREFERENCE_OUTPUT} "
                             f"and DIR/{PROMPT_OUTPUT}, with a Markdown report each")
    parser.add_argument("--instruction", metavar="TEXT", **_like_parameter("instruction", default=""))
    parser.add_argument("--system-prompt", metavar="TEXT", **_like_parameter("system_prompt"))
    parser.add_argument("--prompt-sequence-length", type=int, metavar="TOKENS",
                        **_like_parameter("prompt_sequence_length"))
    parser.add_argument("--target-sequence-length", type=int, metavar="TOKENS",
                        **_like_parameter("target_sequence_length"))
    parser.add_argument("--length-policy", choices=LENGTH_POLICIES, **_like_parameter("length_policy"))
    parser.add_argument("--max-bad-row-fraction", type=float, metavar="SHARE",
                        **_like_parameter("max_bad_row_fraction"))
    parser.add_argument("--eval-split-fraction", type=float, metavar="SHARE",
                        **_like_parameter("eval_split_fraction"))
    parser.add_argument("--max-eval-prompts", type=int, metavar="N", **_like_parameter("max_eval_prompts"))
    parser.add_argument("--seed", type=int, **_like_parameter("seed"))


def _summary(title: str, prepared: PreparedData) -> list[str]:
    unit = "pairs" if prepared.kind == PREFERENCE else "prompts"
    lines = [f"{title}: usable"]
    for data in prepared.datasets:
        b = data.ledger
        expansion = f", {b.expansion:+d} pairs made by expansion" if b.expansion else ""
        aside = f", {b.set_aside} set aside" if b.set_aside else ""
        lines.append(f"  {b.source}: format {b.layout}, {len(b.files)} file(s), {b.input_rows} rows{expansion}: "
                     f"{b.used} used, {b.rejected} rejected, {b.duplicates} duplicates{aside}"
                     f" ({'books balance' if b.balanced() else 'BOOKS DO NOT BALANCE'})")
        if b.rejects:
            lines.append("    rejected: " + ", ".join(f"{n} {reason}" for reason, n in b.reasons().most_common()))
            lines += [f"    - {reject}" for reject in b.rejects[:REJECTS_SHOWN]]
        if b.truncated:
            lines.append("    truncated: " + ", ".join(f"{name} {n}" for name, n in b.truncated.items()))
        for name, values in data.lengths.lengths.items():
            cells = ", ".join(f"p{q} {percentile(values, q)}" for q in PERCENTILES)
            over = data.lengths.over_limit.get(name, 0)
            lines.append(f"    {name} tokens: {cells}, max {max(values)}; {over} over the limit")
    origin = "eval dataset" if prepared.eval_data else "held out from the training data"
    lines.append(f"  train {len(prepared.train)} {unit}, eval {len(prepared.eval)} {unit} ({origin})")
    if prepared.leaks:
        lines.append(f"  leakage: {len(prepared.leaks)} pairs are in both train and eval, e.g. "
                     f"{prepared.leaks[0][0].ref} and {prepared.leaks[0][1].ref}")
    if prepared.shared_prompts:
        lines.append(f"  {prepared.shared_prompts} eval prompts also appear in training")
    lines += [f"  note: {note}" for note in prepared.notes]
    if prepared.missing_eval:
        lines.append(f"  warning: {prepared.missing_eval} (rlhf-pipeline run refuses this)")
    return lines


def _validate(title: str, prepare, output_name: str, args, settings: DataSettings) -> bool:
    try:
        prepared = prepare()
    except UserInputError as error:
        print(f"{title}: NOT USABLE: {error}")
        return False
    print("\n".join(_summary(title, prepared)))
    if args.write_normalized:
        directory = Path(args.write_normalized) / output_name
        write_prepared(prepared, directory)
        write_report(prepared, directory.with_name(f"{output_name}_report.md"),
                     settings.prompt_sequence_length, settings.target_sequence_length)
        print(f"  written: {directory}")
    return True


def main(args: argparse.Namespace) -> int:
    """Validates the datasets named in `args`; 0 when all are usable, 1 otherwise."""
    if not args.preference_dataset and not args.prompt_dataset:
        raise UserInputError("give --preference-dataset and/or --prompt-dataset")
    if not 0.0 <= args.eval_split_fraction < 1.0:
        raise UserInputError(f"--eval-split-fraction must be in [0, 1), got {args.eval_split_fraction}")
    settings = DataSettings(args.format, args.instruction or None, args.prompt_sequence_length,
                            args.target_sequence_length, args.length_policy, args.max_bad_row_fraction,
                            args.system_prompt or None)
    length_tokenizer = load_length_tokenizer(args.tokenizer)
    if length_tokenizer.note:
        print(f"note: {length_tokenizer.note}")
    tokenizer = length_tokenizer.tokenizer
    usable = True
    if args.preference_dataset:
        usable &= _validate("preference dataset", lambda: prepare_preferences(
            args.preference_dataset, args.eval_dataset, settings, tokenizer, args.eval_split_fraction, args.seed),
            PREFERENCE_OUTPUT, args, settings)
    if args.prompt_dataset:
        usable &= _validate("prompt dataset", lambda: prepare_prompts(
            args.prompt_dataset, args.eval_dataset, settings, tokenizer, args.eval_split_fraction,
            args.max_eval_prompts, args.seed), PROMPT_OUTPUT, args, settings)
    print("result: usable" if usable else "result: NOT USABLE")
    return EXIT_USABLE if usable else EXIT_NOT_USABLE


def run_standalone(argv: list[str] | None = None) -> int:
    """`python -m cli.commands.validate_data ...`: the same command without the main CLI."""
    parser = argparse.ArgumentParser(prog="validate-data", description=DESCRIPTION)
    add_arguments(parser)
    try:
        return main(parser.parse_args(argv))
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run_standalone())
