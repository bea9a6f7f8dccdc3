"""KTO's training rows: single answers labelled desirable or undesirable, made from the prepared pairs.

The data stage hands every preference layout over as pairs; KTO's own layout (prompt, completion,
label) comes as the pairs of every desirable against every undesirable completion of a prompt
(components/common/data/formats.py). Splitting each pair into its chosen answer (desirable) and its
rejected answer (undesirable), and keeping each distinct row once, gives KTO back the rows such data
started from, and the plain pairs of other layouts two rows each.

The KTO paper (Ethayarajh et al., 2024, eq. 8) advises weights such that
desirable_weight x desirable rows / (undesirable_weight x undesirable rows) lies in [1, 4/3].
"""

from dataclasses import dataclass

from components.common.data.transcripts import Prompt

RECOMMENDED_BALANCE = (1.0, 4.0 / 3.0)  # the KTO paper's range of weighted desirable / undesirable rows


@dataclass(frozen=True)
class KTORow:
    prompt: Prompt
    completion: str
    desirable: bool


def unpaired_rows(pairs: list[dict]) -> list[KTORow]:
    """A desirable row for each pair's chosen answer and an undesirable one for its rejected answer, in
    the order of the pairs, each distinct (prompt, completion, label) once."""
    rows = {}
    for pair in pairs:
        prompt = Prompt.from_row(pair)
        for row in (KTORow(prompt, pair["chosen"], True), KTORow(prompt, pair["rejected"], False)):
            rows.setdefault(row, None)
    return list(rows)


@dataclass(frozen=True)
class ClassBalance:
    """How many desirable and undesirable rows KTO trains on, and with what weights."""

    desirable: int
    undesirable: int
    desirable_weight: float
    undesirable_weight: float

    @classmethod
    def of(cls, rows: list[KTORow], desirable_weight: float, undesirable_weight: float) -> "ClassBalance":
        desirable = sum(row.desirable for row in rows)
        return cls(desirable, len(rows) - desirable, desirable_weight, undesirable_weight)

    @property
    def ratio(self) -> float:
        """desirable_weight x desirable rows / (undesirable_weight x undesirable rows)."""
        return self.desirable_weight * self.desirable / (self.undesirable_weight * self.undesirable)

    @property
    def in_recommended_range(self) -> bool:
        low, high = RECOMMENDED_BALANCE
        return low <= self.ratio <= high + 1e-12

    def warning(self) -> str:
        """One line on a balance outside the recommended range, with the weights that would fix it."""
        low, high = RECOMMENDED_BALANCE
        share = self.undesirable / self.desirable
        desirable_range = (low * self.undesirable_weight * share, high * self.undesirable_weight * share)
        undesirable_range = (self.desirable_weight / share / high, self.desirable_weight / share / low)
        return (
            f"warning: KTO class balance {self.ratio:.2f} (desirable_weight {self.desirable_weight:g} x "
            f"{self.desirable} desirable rows / (undesirable_weight {self.undesirable_weight:g} x {self.undesirable} "
            f"undesirable rows)) is outside the KTO paper's recommended [1, 4/3]; set kto_desirable_weight in "
            f"[{desirable_range[0]:.2f}, {desirable_range[1]:.2f}] or kto_undesirable_weight in "
            f"[{undesirable_range[0]:.2f}, {undesirable_range[1]:.2f}]"
        )
