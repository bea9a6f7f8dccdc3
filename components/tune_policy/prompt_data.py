"""The training prompts of the PPO stage: reading them, and the order the rollouts take them in."""

import random
from collections.abc import Iterator
from pathlib import Path

from components.common.canonical_data import PROMPT_FIELDS, read_canonical_rows
from components.common.data.transcripts import Prompt


def read_training_prompts(path: str | Path) -> list[Prompt]:
    """The prompt of every row of a canonical JSONL file (with its conversation, when it has one)."""
    return [Prompt.from_row(row) for row in read_canonical_rows(path, PROMPT_FIELDS, needed_for="policy tuning")]


def prompt_batches(prompts: list[Prompt], batch_size: int, seed: int) -> Iterator[list[Prompt]]:
    """Endless batches of `batch_size` prompts: each pass over the data is a fresh seeded shuffle.

    A batch that reaches the end of one pass continues into the next, so every batch is full and
    every prompt is used once per pass, whatever the ratio of data size to batch size.
    """
    if not prompts:
        raise ValueError("no prompts to draw batches from")
    shuffler = random.Random(seed)
    order: list[int] = []
    while True:
        while len(order) < batch_size:
            one_pass = list(range(len(prompts)))
            shuffler.shuffle(one_pass)
            order.extend(one_pass)
        yield [prompts[i] for i in order[:batch_size]]
        del order[:batch_size]
