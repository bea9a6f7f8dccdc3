"""What installed packages add to the pipeline: built-in models and gold scorers, by entry points.

The stages know no sample task by name. A package offers a built-in model (built offline, addressed as
`large_model_reference: builtin:NAME`) under the entry-point group `rlhf_pipeline.builtin_models`,
each entry a `BuiltinModel`, and a gold scorer (the `gold_scorer` parameter: a task's known preference
function, `(prompt, response) -> score`) under `rlhf_pipeline.gold_scorers`. This project's sample
tasks (`embedded_default/`) register theirs in pyproject.toml, as another package would in its own.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

BUILTIN_MODELS_GROUP = "rlhf_pipeline.builtin_models"
GOLD_SCORERS_GROUP = "rlhf_pipeline.gold_scorers"
BUILTIN_PREFIX = "builtin:"

GoldScorer = Callable[[str, str], float]  # (prompt, response) -> score, higher is better


@dataclass(frozen=True)
class BuiltinModel:
    """A model a package builds offline: what it is, how to build it into a folder with a seed, and the
    config.json values the build writes (read by the memory plan without building)."""

    description: str
    build: Callable[[Path, int], Path]  # (output_dir, seed) -> the saved model folder
    architecture: Callable[[], dict]  # () -> the built model's config.json values (model_type, sizes)


def builtin_models() -> dict[str, BuiltinModel]:
    """Every registered built-in model, by its reference (`builtin:NAME`)."""
    return {BUILTIN_PREFIX + entry.name: entry.load() for entry in entry_points(group=BUILTIN_MODELS_GROUP)}


def gold_scorers() -> dict[str, GoldScorer]:
    """Every registered gold scorer, by its `gold_scorer` name."""
    return {entry.name: entry.load() for entry in entry_points(group=GOLD_SCORERS_GROUP)}
