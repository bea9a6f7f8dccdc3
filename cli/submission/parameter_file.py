"""Reading pipeline parameter values from a YAML or JSON file and `--set name=value` overrides.

The same file works for `rlhf-pipeline run` (locally) and `rlhf-pipeline submit` (in the cloud): a
mapping of pipeline parameter names to values, e.g. the `parameter_values` dict of the public
Vertex AI RLHF course saved as JSON. Values are checked against the template afterwards
(validation.py); here only the file's shape is checked.
"""

import json
import re
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import UserInputError

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
FORMAT_HINT = "expected a YAML or JSON mapping of parameter names to values, e.g. `kl_coeff: 0.1`"


class CommandLineValue(str):
    """A value typed on the command line: text, read against the parameter's type when validated.

    A string parameter keeps the text exactly as typed (`--set instruction=123` is the string
    "123"); other types read it as a YAML scalar (`--set kl_coeff=0.2`, `--set deploy_model=false`).
    """


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping naming the same key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise UserInputError(f"{loader.name}, line {line}: parameter '{key}' is given twice "
                                 f"(first on line {seen[key]})")
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_json(path: Path, text: str) -> Any:
    def unique(pairs):
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                raise UserInputError(f"{path}: parameter '{name}' is given twice")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as error:
        raise UserInputError(f"{path}, line {error.lineno}, column {error.colno}: not valid JSON "
                             f"({error.msg}); {FORMAT_HINT}") from None


def _parse_yaml(path: Path, text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserInputError(f"{path}{where}: not valid YAML ({problem}); {FORMAT_HINT}") from None
    finally:
        loader.dispose()


def read_parameter_file(params_file: str | Path) -> dict[str, Any]:
    """The mapping of a parameter file; `.json` files are read as JSON, anything else as YAML."""
    path = Path(params_file)
    if not path.is_file():
        raise UserInputError(f"parameter file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: not UTF-8 text; {FORMAT_HINT}") from None
    document = _parse_json(path, text) if path.suffix.lower() == ".json" else _parse_yaml(path, text)
    if document is None or document == {}:
        # An empty file is a mistake, not a request for the defaults: `run` would quietly run the
        # embedded sample task instead of the user's data.
        raise UserInputError(f"{path}: holds no parameters ({'empty' if document is None else 'an empty mapping'}); "
                             f"{FORMAT_HINT}. To run the embedded sample task, leave out --params")
    if not isinstance(document, dict):
        raise UserInputError(f"{path}: holds {type(document).__name__} at the top level; {FORMAT_HINT}")
    not_names = [repr(key) for key in document if not isinstance(key, str) or not NAME_PATTERN.match(key)]
    if not_names:
        raise UserInputError(f"{path}: {', '.join(not_names)} cannot be parameter names; {FORMAT_HINT}")
    return document


def parse_set(assignment: str) -> tuple[str, CommandLineValue]:
    """`name=value` from `--set`; the value stays text until it is read against the parameter's type."""
    name, separator, value = assignment.partition("=")
    name = name.strip()
    if not separator or not NAME_PATTERN.match(name):
        raise UserInputError(f"--set {assignment!r}: expected NAME=VALUE, e.g. --set kl_coeff=0.2")
    return name, CommandLineValue(value)


def load_parameter_values(params_file: str | Path | None, sets: list[str] | None) -> dict[str, Any]:
    """The parameter file's values (if any), overridden by every `--set NAME=VALUE` in order."""
    values = read_parameter_file(params_file) if params_file else {}
    for assignment in sets or []:
        name, value = parse_set(assignment)
        values[name] = value
    return values
