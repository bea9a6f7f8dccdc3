"""What `rlhf-pipeline params` shows: each parameter's type, default, allowed values and description,
and a parameter file to start from.

Everything comes from the one parameter table (pipeline/parameters.py), the text the pipeline UI
shows, and the value rules that `run` and `submit` check (cli/submission/constraints.py).
"""

import textwrap
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import UserInputError
from components.common.vertex_placeholders import is_vertex_placeholder
from pipeline.parameters import PARAMETERS, PARAMETERS_BY_NAME, Parameter, type_name
from cli.submission.constraints import RULES
from cli.submission.validation import unknown_name_problem

WIDTH = 100
INDENT = "    "
DEFAULTS_FILE_HEADER = """\
# Pipeline parameters for `rlhf-pipeline run --params FILE` (and `submit --params FILE`),
# written by `rlhf-pipeline params --write-defaults`: every parameter at its default.
# Fill in the required ones; delete the lines you do not change. null: the default that
# only the pipeline fills in (the run's project and region) or "not set"."""


def selected(names: list[str]) -> list[Parameter]:
    """The parameters named, in the table's order (every one when none is named)."""
    unknown = [name for name in names if name not in PARAMETERS_BY_NAME]
    if unknown:
        raise UserInputError("; ".join(unknown_name_problem(name, list(PARAMETERS_BY_NAME)) for name in unknown))
    return [p for p in PARAMETERS if not names or p.name in names]


def heading(parameter: Parameter) -> str:
    """`kl_coeff (float, default 0.1, at least 0 (0 disables the KL penalty))`."""
    parts = [type_name(parameter.annotation), "required" if parameter.required else f"default {parameter.default!r}"]
    rule = RULES.get(parameter.name)
    if rule is not None:
        parts.append(rule.expectation)
    return f"{parameter.name} ({', '.join(parts)})"


def describe(parameters: list[Parameter]) -> str:
    """Each parameter's heading, then its description wrapped and indented."""
    blocks = []
    for parameter in parameters:
        body = textwrap.fill(parameter.description, WIDTH, initial_indent=INDENT, subsequent_indent=INDENT,
                             break_on_hyphens=False)  # "TRL-trained", "data-parallel" stay whole
        blocks.append(f"{heading(parameter)}\n{body}")
    return "\n".join(blocks)


def starting_value(parameter: Parameter) -> Any:
    """What a new parameter file says: the default, "" for a required value, null for one only the
    pipeline fills in (null reads as "use the default" in `run` and `submit`)."""
    if parameter.required:
        return ""
    if parameter.default is None or is_vertex_placeholder(parameter.default):
        return None
    return parameter.default


def defaults_file_text() -> str:
    """A YAML parameter file: every parameter at its starting value, its description above it."""
    lines = [DEFAULTS_FILE_HEADER]
    for parameter in PARAMETERS:
        lines.append("")
        lines += textwrap.wrap(f"{heading(parameter)}: {parameter.description}", WIDTH,
                               initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
        value = yaml.safe_dump({parameter.name: starting_value(parameter)}, width=float("inf"), sort_keys=False)
        lines.append(value.rstrip("\n"))
    return "\n".join(lines) + "\n"


def write_defaults_file(path: str | Path) -> Path:
    """Write `defaults_file_text()` to a new file; an existing file is never overwritten."""
    path = Path(path)
    if path.exists():
        raise UserInputError(f"{path} already exists; remove it or name another file")
    if not path.parent.is_dir():
        raise UserInputError(f"{path}: no directory {path.parent}")
    path.write_text(defaults_file_text(), encoding="utf-8")
    return path
