"""The values that flow through data preparation: raw rows, rejects and canonical examples."""

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class PreferencePair:
    """The canonical form the reward trainer reads: a prompt (instruction included) and two answers."""

    prompt: str
    chosen: str
    rejected: str
    ref: RowRef
    margin: float | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.margin is not None:
            row["margin"] = self.margin
        return row

    def key(self) -> tuple[str, str, str]:
        return (self.prompt, self.chosen, self.rejected)


@dataclass
class PromptRow:
    """The canonical form the policy trainer reads: one prompt, instruction included."""

    prompt: str
    ref: RowRef

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt}

    def key(self) -> tuple[str]:
        return (self.prompt,)


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
