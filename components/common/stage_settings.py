"""A stage's settings filled from the pipeline parameters its KFP wrapper receives, by name.

A stage config is a dataclass. A field named like a pipeline parameter (`batch_size`, `kl_coeff`)
takes that parameter's value; a field whose engine name differs says which parameter fills it with
`from_parameter("ppo_minibatch_size", default)`; every other field keeps its default. The wrapper
then builds its config in one line, `settings_from_arguments(Config, arguments)`, so a new pipeline
parameter reaches a stage through the parameter table (pipeline/parameters.py), the wrapper's
signature and the field that uses it: nothing is forwarded by hand.
"""

import dataclasses
from typing import Any, Mapping, TypeVar

PARAMETER = "parameter"  # the field metadata key naming the pipeline parameter that fills the field

Config = TypeVar("Config")


def from_parameter(parameter: str, default: Any = dataclasses.MISSING) -> Any:
    """A config field filled from the pipeline parameter `parameter` (its default is `default`, if any)."""
    return dataclasses.field(default=default, metadata={PARAMETER: parameter})


def parameter_name(field: dataclasses.Field) -> str:
    """The pipeline parameter (or wrapper argument) that fills `field`: its own name unless it says otherwise."""
    return field.metadata.get(PARAMETER, field.name)


def settings_from_arguments(config_class: type[Config], arguments: Mapping[str, Any], **values: Any) -> Config:
    """`config_class` with every field whose parameter is among `arguments` (a wrapper's `locals()`)
    set from it; `values` set fields that come from elsewhere (a count derived by a data stage)."""
    filled = {field.name: arguments[parameter_name(field)] for field in dataclasses.fields(config_class)
              if field.init and parameter_name(field) in arguments}
    return config_class(**{**filled, **values})
