"""The values that flow through data preparation: raw rows, rejects and canonical examples."""

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from components.common import canonical_data
from components.common.data import reasons
from components.common.data.transcripts import MESSAGES_FIELD, Message

SHOWN_CHARACTERS = 20  # of a blank text, in its reject
COLUMNS_FIELD = "columns"  # the canonical prompt rows' field holding the columns a reward function receives
GROUND_TRUTH = "ground_truth"  # the column the built-in reward functions compare answers with


@dataclass(frozen=True)
class RowRef:
    """Where a row came from: its file and its line (text files) or row index (.json, .parquet)."""

    file: str
    row: int
    unit: str = "line"  # "line" (1-based) for JSONL and CSV, "row" (0-based) for JSON arrays and Parquet

    def __str__(self) -> str:
        return f"{self.file}, {self.unit} {self.row}"


@dataclass(frozen=True)
class RawRecord:
    """One row as read from its container: a dict of fields, or the reason it could not be read."""

    ref: RowRef
    value: dict[str, Any] | None = None
    error: "Reject | None" = None
    from_text: bool = False  # every value is a string (CSV): numbers and lists arrive as text


@dataclass(frozen=True)
class Reject:
    """A row (or a pair made from it) that is not used, and why."""

    ref: RowRef
    reason: str  # one of the reason codes of `components.common.data.reasons`
    field: str
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.ref.file,
            self.ref.unit: self.ref.row,
            "field": self.field,
            "reason": self.reason,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        where = f"{self.ref}, field '{self.field}'" if self.field else str(self.ref)
        return f"{where}: {self.detail}"


def _with_messages(row: dict[str, Any], messages: tuple[Message, ...] | None) -> dict[str, Any]:
    if messages is not None:
        row[MESSAGES_FIELD] = [m.to_json() for m in messages]
    return row


@dataclass
class PreferencePair:
    """The canonical form the reward trainer reads: a prompt (instruction included) and two answers.

    `prompt_messages` is the prompt's conversation when it came as one, for models with a chat template.
    """

    TEXT_FIELDS: ClassVar = canonical_data.PREFERENCE_FIELDS

    prompt: str
    chosen: str
    rejected: str
    ref: RowRef
    margin: float | None = None
    prompt_messages: tuple[Message, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.margin is not None:
            row["margin"] = self.margin
        return _with_messages(row, self.prompt_messages)

    def key(self) -> tuple[str, str, str]:
        return (self.prompt, self.chosen, self.rejected)


@dataclass
class PromptRow:
    """The canonical form the policy trainer reads: one prompt, instruction included (and its conversation).

    `columns` are the row's other fields, passed to a reward function as keyword arguments, the way
    TRL passes a dataset's columns (`ground_truth` among them, when the row has one).
    """

    TEXT_FIELDS: ClassVar = canonical_data.PROMPT_FIELDS

    prompt: str
    ref: RowRef
    prompt_messages: tuple[Message, ...] | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = _with_messages({"prompt": self.prompt}, self.prompt_messages)
        if self.columns:
            row[COLUMNS_FIELD] = self.columns
        return row

    def key(self) -> tuple[str, ...]:
        """A prompt repeats another when its text and its ground truth do; its other columns (an id...) do not count."""
        truth = self.columns.get(GROUND_TRUTH)
        return (self.prompt,) if truth is None else (self.prompt, str(truth))


def text_fault(example: PreferencePair | PromptRow) -> tuple[str, str, str] | None:
    """(field, reason code, what is wrong) of the first text of `example` the stages after this one
    cannot take, or None.

    The trainers refuse a blank field (`canonical_data.read_canonical_rows`), and a lone surrogate (a
    JSON escape such as \\ud800) cannot be written as UTF-8: validation refuses both, on the user's row.
    """
    for name in example.TEXT_FIELDS:
        text = getattr(example, name)
        if not text.strip():
            return name, reasons.EMPTY_FIELD, f"is only whitespace ({json.dumps(text[:SHOWN_CHARACTERS])})"
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                return name, reasons.NOT_UTF8, (f"holds a lone surrogate (\\u{ord(text[error.start]):04x}), "
                                                "which UTF-8 cannot encode")
    return None


@dataclass
class Conversion:
    """What rows turned into: examples and rejects.

    Formats that expand rows into pairs (rankings, unpaired labels) also say how many pairs they
    made out of how many rows, so that the books can show the difference separately.
    """

    examples: list = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    pairs_made: int = 0
    rows_paired: int = 0
