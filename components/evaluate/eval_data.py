"""Reading the held-out prompts the evaluation samples from (JSONL); its held-out pairs are read by
components/common/canonical_data.read_preference_pairs."""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.canonical_data import PROMPT_FIELDS, read_canonical_rows
from components.common.data.records import COLUMNS_FIELD
from components.common.data.transcripts import Prompt


@dataclass(frozen=True)
class EvalPrompt:
    """A held-out prompt and its row's columns (`ground_truth`, ...: what a reward function receives)."""

    prompt: Prompt
    columns: dict[str, Any] = field(default_factory=dict)


def read_eval_prompt_rows(path: str | Path, max_prompts: int, seed: int) -> list[EvalPrompt]:
    """Held-out prompt rows {"prompt", "columns"?}: all of them, or a seeded random subset of `max_prompts`
    in file order; a row without columns gets an empty mapping."""
    rows = read_canonical_rows(path, PROMPT_FIELDS, needed_for="the evaluation of the policies")
    prompts = [EvalPrompt(Prompt.from_row(row), dict(row.get(COLUMNS_FIELD) or {})) for row in rows]
    if len(prompts) <= max_prompts:
        return prompts
    keep = sorted(random.Random(seed).sample(range(len(prompts)), max_prompts))
    return [prompts[i] for i in keep]


def read_eval_prompts(path: str | Path, max_prompts: int, seed: int) -> list[Prompt]:
    """Held-out prompts {"prompt"}: all of them, or a seeded random subset of `max_prompts` in file order."""
    return [row.prompt for row in read_eval_prompt_rows(path, max_prompts, seed)]
