"""The books of one dataset: every input row is used, rejected (with a reason) or a duplicate.

    input rows + pairs made by expansion = used + rejected + duplicates + set aside

"Pairs made by expansion" is the number of pairs that expanding layouts (rankings, unpaired labels)
made minus the rows they made them from; "set aside" counts well-formed rows left out by a cap
(held-out prompts beyond `max_eval_prompts`). Every other layout keeps both at zero.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from components.common.data.reasons import is_error
from components.common.data.records import Reject

EXAMPLES_IN_SUMMARY = 3


@dataclass
class Ledger:
    source: str
    kind: str  # "preference" or "prompt"
    layout: str
    files: list[str] = field(default_factory=list)
    input_rows: int = 0
    expansion: int = 0
    used: int = 0
    duplicates: int = 0
    set_aside: int = 0
    rejects: list[Reject] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def bad_rows(self) -> int:
        """Rejects that are errors in the data (they count against the tolerance)."""
        return sum(1 for r in self.rejects if is_error(r.reason))

    def reasons(self) -> Counter:
        return Counter(r.reason for r in self.rejects)

    def balanced(self) -> bool:
        return self.input_rows + self.expansion == self.used + self.rejected + self.duplicates + self.set_aside

    def reasons_summary(self) -> str:
        counts = ", ".join(f"{count} {reason}" for reason, count in self.reasons().most_common())
        examples = "; ".join(str(r) for r in self.rejects[:EXAMPLES_IN_SUMMARY])
        return f"{counts}. First: {examples}" if examples else counts

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "format": self.layout,
            "files": self.files,
            "input_rows": self.input_rows,
            "pairs_made_by_expansion": self.expansion,
            "used": self.used,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "set_aside": self.set_aside,
            "balanced": self.balanced(),
            "rejected_by_reason": dict(self.reasons().most_common()),
            "labels": self.labels,
            "truncated": self.truncated,
        }
