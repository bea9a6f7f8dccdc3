"""`rlhf-pipeline COMMAND --help`: a description written for a reader and a help text for every option."""

import argparse

import pytest

from cli.main import build_parser
from pipeline.parameters import PARAMETERS_BY_NAME


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_of_every_command_has_help(name):
    parser = subcommands()[name]
    assert parser.description and not parser.description.startswith(("`", '"""')), name
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert undocumented == []


def test_validate_data_options_that_are_pipeline_parameters_say_what_the_parameter_table_says():
    help_text = " ".join(subcommands()["validate-data"].format_help().split())
    for name in ("prompt_sequence_length", "target_sequence_length", "eval_split_fraction", "max_eval_prompts", "seed"):
        parameter = PARAMETERS_BY_NAME[name]
        assert f"{parameter.description} (default: {parameter.default})" in help_text
