"""Reading the held-out data the evaluation runs on: preference pairs and prompts (JSONL)."""

import random
from dataclasses import dataclass
from pathlib import Path

from components.common.canonical_data import PREFERENCE_FIELDS, PROMPT_FIELDS, read_canonical_rows
from components.common.data.transcripts import Prompt


@dataclass(frozen=True)
class PreferencePair:
    prompt: Prompt
    chosen: str
    rejected: str


def read_preference_pairs(path: str | Path) -> list[PreferencePair]:
    """Held-out pairs in the canonical form {"prompt", "chosen", "rejected"}."""
    rows = read_canonical_rows(path, PREFERENCE_FIELDS, needed_for="the evaluation of the reward model")
    return [PreferencePair(Prompt.from_row(r), r["chosen"], r["rejected"]) for r in rows]


def read_eval_prompts(path: str | Path, max_prompts: int, seed: int) -> list[Prompt]:
    """Held-out prompts {"prompt"}: all of them, or a seeded random subset of `max_prompts` in file order."""
    rows = read_canonical_rows(path, PROMPT_FIELDS, needed_for="the evaluation of the policies")
    prompts = [Prompt.from_row(row) for row in rows]
    if len(prompts) <= max_prompts:
        return prompts
    keep = sorted(random.Random(seed).sample(range(len(prompts)), max_prompts))
    return [prompts[i] for i in keep]
