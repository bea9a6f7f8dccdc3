"""The training prompts of the PPO stage: reading them, and the order the rollouts take them in."""

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.canonical_data import PROMPT_FIELDS, read_canonical_rows
from components.common.data.records import COLUMNS_FIELD
from components.common.data.transcripts import Prompt


@dataclass(frozen=True)
class PromptRow:
    """A training prompt and its row's columns (what a reward function receives besides the completions)."""

    prompt: Prompt
    columns: dict[str, Any] = field(default_factory=dict)


def read_training_prompts(path: str | Path) -> list[Prompt]:
    """The prompt of every row of a canonical JSONL file (with its conversation, when it has one)."""
    return [row.prompt for row in read_training_rows(path)]


def read_training_rows(path: str | Path) -> list[PromptRow]:
    """Every row of a canonical JSONL file: its prompt and its columns (an empty mapping when it has none)."""
    rows = read_canonical_rows(path, PROMPT_FIELDS, needed_for="policy tuning")
    return [PromptRow(Prompt.from_row(row), dict(row.get(COLUMNS_FIELD) or {})) for row in rows]


class PromptBatches:
    """Endless batches of `batch_size` prompts: each pass over the data is a fresh seeded shuffle.

    A batch that reaches the end of one pass continues into the next, so every batch is full and
    every prompt is used once per pass, whatever the ratio of data size to batch size. Its position
    (the shuffler's state and the rest of the current order) can be saved and restored, so that a
    resumed run draws the batches an uninterrupted one would.
    """

    def __init__(self, prompts: list[Prompt], batch_size: int, seed: int):
        if not prompts:
            raise ValueError("no prompts to draw batches from")
        self.prompts = prompts
        self.batch_size = batch_size
        self.shuffler = random.Random(seed)
        self.order: list[int] = []

    def __iter__(self) -> "PromptBatches":
        return self

    def __next__(self) -> list[Prompt]:
        while len(self.order) < self.batch_size:
            one_pass = list(range(len(self.prompts)))
            self.shuffler.shuffle(one_pass)
            self.order.extend(one_pass)
        batch = [self.prompts[i] for i in self.order[: self.batch_size]]
        del self.order[: self.batch_size]
        return batch

    def state(self) -> dict:
        """The position, as JSON values."""
        version, internal, gauss = self.shuffler.getstate()
        return {"shuffler": [version, list(internal), gauss], "order": list(self.order)}

    def restore(self, state: dict) -> None:
        """Continue from a position `state()` returned."""
        version, internal, gauss = state["shuffler"]
        self.shuffler.setstate((version, tuple(internal), gauss))
        self.order = list(state["order"])
