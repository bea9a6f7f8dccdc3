"""Checking parameter values against the pipeline template before anything runs or is submitted.

The Vertex SDK itself checks only the names; a wrong type or a missing dataset would otherwise
fail in the cloud, after machines were paid for. Every problem is collected and reported at once.
"""

import difflib
import math
from typing import Any

import yaml

from components.common.errors import UserInputError
from cli.submission.constraints import value_problems
from cli.submission.parameter_file import CommandLineValue
from cli.submission.template import BOOLEAN, DOUBLE, INTEGER, LIST, STRING, STRUCT, TemplateInput


class _TypeProblem(Exception):
    pass


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"a {type(value).__name__}"


def _read_command_line(text: CommandLineValue, parameter_type: str) -> Any:
    if parameter_type == STRING:
        return str(text)
    try:
        return yaml.safe_load(text) if text.strip() else str(text)
    except yaml.YAMLError:
        return str(text)


def coerce(value: Any, spec: TemplateInput) -> Any:
    """`value` as the parameter's type; raises _TypeProblem with the reason when it is not one."""
    if isinstance(value, CommandLineValue):
        value = _read_command_line(value, spec.parameter_type)
    kind = spec.parameter_type
    if kind == STRING and isinstance(value, str):
        return str(value)
    if kind == BOOLEAN and isinstance(value, bool):
        return value
    if kind == INTEGER and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if kind == DOUBLE and isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    if kind == LIST and isinstance(value, list):
        return value
    if kind == STRUCT and isinstance(value, dict):
        return value
    hint = ""
    if kind in (INTEGER, DOUBLE) and isinstance(value, str):
        hint = " (write the number without quotes)"
    raise _TypeProblem(f"expected {spec.type_word}, got {_describe(value)}{hint}")


def unknown_name_problem(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown parameter '{name}'{suggestion}: not an input of this pipeline"


def validate_parameter_values(values: dict[str, Any], template_inputs: dict[str, TemplateInput]) -> dict[str, Any]:
    """The values, each converted to its parameter's type; raises UserInputError listing every problem.

    A `None` value of an optional parameter means "use its default" and is left out. Unknown names,
    wrong types, missing required parameters and impossible values (negative steps, a negative
    `kl_coeff`, a TPU...) are all reported in one message.
    """
    problems: list[str] = []
    coerced: dict[str, Any] = {}
    known = sorted(template_inputs)
    for name, value in values.items():
        spec = template_inputs.get(name)
        if spec is None:
            problems.append(unknown_name_problem(name, known))
            continue
        if value is None:
            if spec.required:
                problems.append(f"{name}: is required and cannot be null")
            continue
        try:
            coerced[name] = coerce(value, spec)
        except _TypeProblem as problem:
            problems.append(f"{name}: {problem}")
    missing = [n for n, spec in template_inputs.items() if spec.required and n not in values]
    problems += [f"{n}: is required ({template_inputs[n].type_word}) but not given" for n in missing]
    effective = {n: s.default for n, s in template_inputs.items() if s.has_default} | coerced
    problems += value_problems({n: v for n, v in effective.items() if n in coerced or n not in values})
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise UserInputError(f"pipeline parameters: {count}: " + "; ".join(problems))
    return coerced


def validate_for_pipeline(values: dict[str, Any], pipeline=None) -> dict[str, Any]:
    """`validate_parameter_values` against the in-memory pipeline (the DAG `rlhf-pipeline run` runs)."""
    from cli.submission.template import pipeline_inputs

    if pipeline is None:
        from pipeline.dag import build_pipeline

        pipeline = build_pipeline()
    return validate_parameter_values(values, pipeline_inputs(pipeline))
