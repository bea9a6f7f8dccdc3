"""Gold scorers: a task's known preference function, used to grade generations in the report.

A reward model is only a learned proxy of the preferences. When a task knows the function the
preferences came from (the embedded sample task does), scoring the generations with it tells
whether a higher reward means a better response or a reward model being gamed.
"""

from collections.abc import Mapping

from tqdm.auto import tqdm

from components.common.errors import UserInputError
from components.common.registry import GoldScorer, gold_scorers


def resolve_gold_scorer(name: str, registry: Mapping[str, GoldScorer] | None = None) -> GoldScorer | None:
    """The scorer called `name` in `registry` (default: those installed packages register); None for an
    empty name."""
    if not name:
        return None
    scorers = gold_scorers() if registry is None else registry
    if name not in scorers:
        known = ", ".join(repr(n) for n in sorted(scorers)) or "none"
        raise UserInputError(
            f"gold_scorer: unknown name {name!r}; known gold scorers: {known} (or '' for no gold scoring)"
        )
    return scorers[name]


def gold_scores(scorer: GoldScorer, prompts: list[str], responses: list[str], name: str) -> list[float]:
    """The gold score of every (prompt, response) pair."""
    pairs = zip(prompts, responses, strict=True)
    return [float(scorer(p, r)) for p, r in tqdm(pairs, total=len(prompts), desc=f"{name} policy: gold scores")]
