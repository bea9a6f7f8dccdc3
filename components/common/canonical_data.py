"""Reading the canonical JSONL files the data stages write and the trainers and evaluation read.

Preference rows: {"prompt", "chosen", "rejected"[, "margin"]}; prompt rows: {"prompt"}.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from components.common.data.transcripts import Prompt
from components.common.errors import UserInputError

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
PROMPT_FIELDS = ("prompt",)


def read_canonical_rows(path: str | Path, fields: tuple[str, ...], needed_for: str) -> list[dict]:
    """Every row of a canonical JSONL file, each checked to hold `fields` as non-empty strings.

    Blank lines are skipped; a file with no rows is an error that says what needed them.
    """
    path = Path(path)
    expected = f"JSONL rows with string fields {', '.join(fields)}"
    if not path.is_file():
        raise UserInputError(f"{path}: file not found; expected {expected}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserInputError(f"{path} row {number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{path} row {number}: expected a JSON object; expected {expected}")
            for field in fields:
                if not isinstance(row.get(field), str):
                    raise UserInputError(
                        f"{path} row {number}: field '{field}' is missing or not a string; expected {expected}"
                    )
                if not row[field].strip():
                    raise UserInputError(f"{path} row {number}: field '{field}' is empty; every {field} needs text")
            rows.append(row)
    if not rows:
        raise UserInputError(f"{path}: no rows; {needed_for} needs at least one")
    return rows


@dataclass(frozen=True)
class CanonicalPair:
    """A held-out preference pair as the evaluation and the DPO/KTO stage read it."""

    prompt: Prompt
    chosen: str
    rejected: str


def read_preference_pairs(path: str | Path) -> list[CanonicalPair]:
    """Held-out pairs in the canonical form {"prompt", "chosen", "rejected"}."""
    rows = read_canonical_rows(path, PREFERENCE_FIELDS, needed_for="the evaluation of the reward model")
    return [CanonicalPair(Prompt.from_row(r), r["chosen"], r["rejected"]) for r in rows]
