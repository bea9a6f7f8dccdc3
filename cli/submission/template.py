"""The pipeline template's inputs and images, read from a compiled spec or from the pipeline object.

The compiled spec's `root.inputDefinitions.parameters` (type, default, optional) are the source of
truth for what a submission may set.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import UserInputError

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "pipeline.yaml"
COMPILE_HINT = "compile one with `python compile.py --output pipeline.yaml --image IMAGE`"

STRING, INTEGER, DOUBLE, BOOLEAN, LIST, STRUCT = (
    "STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT")
TYPE_WORDS = {STRING: "a string", INTEGER: "an integer", DOUBLE: "a number", BOOLEAN: "true or false",
              LIST: "a list", STRUCT: "a mapping"}


@dataclass(frozen=True)
class TemplateInput:
    """One root input parameter of the pipeline, as the compiled spec declares it."""

    name: str
    parameter_type: str
    optional: bool
    has_default: bool
    default: Any = None
    description: str = ""

    @property
    def required(self) -> bool:
        return not self.optional

    @property
    def type_word(self) -> str:
        return TYPE_WORDS.get(self.parameter_type, self.parameter_type)


def _pipeline_spec(document: Any, source: str) -> dict:
    """The PipelineSpec of a compiled template (a bare spec, or a PipelineJob holding one)."""
    if isinstance(document, dict) and isinstance(document.get("pipelineSpec"), dict):
        document = document["pipelineSpec"]
    if not isinstance(document, dict) or not isinstance(document.get("root"), dict):
        raise UserInputError(f"{source}: not a compiled pipeline (no `root` section); {COMPILE_HINT}")
    return document


def inputs_from_spec(spec: dict) -> dict[str, TemplateInput]:
    """The root input parameters of a PipelineSpec dict, by name."""
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    inputs = {}
    for name, definition in parameters.items():
        parameter_type = definition.get("parameterType", STRING)
        default = definition.get("defaultValue")
        if parameter_type == INTEGER and isinstance(default, float) and default.is_integer():
            default = int(default)  # protobuf Values hold every number as a double
        inputs[name] = TemplateInput(
            name=name,
            parameter_type=parameter_type,
            optional=bool(definition.get("isOptional", False)),
            has_default="defaultValue" in definition,
            default=default,
            description=definition.get("description", ""),
        )
    return inputs


def load_template(path: str | Path) -> dict:
    """The PipelineSpec dict of a compiled template file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"pipeline template {path} not found; {COMPILE_HINT}")
    try:
        # a template compiled with Kubernetes settings (kfp-kubernetes) holds them in a second document
        document = next(yaml.safe_load_all(path.read_text(encoding="utf-8")), None)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path}: not a readable pipeline template ({error}); {COMPILE_HINT}") from None
    return _pipeline_spec(document, str(path))


def read_template_inputs(path: str | Path) -> dict[str, TemplateInput]:
    """The root input parameters of the compiled template at `path`."""
    return inputs_from_spec(load_template(path))


def pipeline_inputs(pipeline) -> dict[str, TemplateInput]:
    """The root input parameters of an in-memory `@dsl.pipeline`, exactly as compiling it declares them."""
    from google.protobuf import json_format

    return inputs_from_spec(json_format.MessageToDict(pipeline.pipeline_spec))


def template_images(spec: dict) -> set[str]:
    """Every container image the template's executors run."""
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    return {e["container"]["image"] for e in executors.values() if "image" in e.get("container", {})}


def pipeline_name(spec: dict) -> str:
    return spec.get("pipelineInfo", {}).get("name", "pipeline")
