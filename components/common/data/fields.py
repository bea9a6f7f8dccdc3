"""Reading typed fields out of a row, with the reason code and wording of every way they can be wrong."""

import json
import math
from typing import Any

from components.common.data import reasons
from components.common.data.records import GROUND_TRUTH, RawRecord
from components.common.data.transcripts import Message, MessageError, parse_messages

TRUE_TEXTS = frozenset({"true", "1", "yes", "good"})
FALSE_TEXTS = frozenset({"false", "0", "no", "bad"})


class RowError(Exception):
    """A row that cannot be used: reason code, field and what is wrong with it."""

    def __init__(self, reason: str, field: str, detail: str):
        super().__init__(detail)
        self.reason, self.field, self.detail = reason, field, detail


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def present(record: RawRecord, field: str) -> bool:
    value = record.value.get(field)
    return value is not None and not (record.from_text and value.strip() == "")


def first_present(record: RawRecord, names: tuple[str, ...]) -> str:
    """Which of `names`, the accepted names of one field, the row gives: the first present one."""
    for name in names:
        if present(record, name):
            return name
    others = ", ".join(f"'{name}'" for name in names[1:])
    raise RowError(reasons.MISSING_FIELD, names[0], f"the field '{names[0]}' (or {others}) is missing")


def raw(record: RawRecord, field: str) -> Any:
    if field not in record.value or record.value[field] is None:
        raise RowError(reasons.MISSING_FIELD, field, f"the field '{field}' is missing")
    return record.value[field]


def text(record: RawRecord, field: str) -> str:
    """A non-empty string."""
    value = raw(record, field)
    if not isinstance(value, str):
        raise RowError(reasons.WRONG_TYPE, field,
                       f"'{field}' must be a string, got {type(value).__name__} {_shown(value)}")
    if not value.strip():
        raise RowError(reasons.EMPTY_FIELD, field, f"'{field}' is empty")
    return value


def structured(record: RawRecord, field: str) -> Any:
    """A list or object field; in text containers (CSV) it is written as JSON in its cell."""
    value = raw(record, field)
    if record.from_text and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise RowError(reasons.MALFORMED_JSON, field, f"'{field}' holds malformed JSON ({error.msg})") from None
    return value


def messages(record: RawRecord, field: str) -> list[Message]:
    try:
        return parse_messages(structured(record, field))
    except MessageError as error:
        raise RowError(reasons.BAD_MESSAGES, field, f"'{field}': {error}") from None


def is_message_list(record: RawRecord, field: str) -> bool:
    value = record.value.get(field)
    if record.from_text and isinstance(value, str):
        stripped = value.lstrip()
        return stripped.startswith("[") and stripped[1:].lstrip().startswith("{")
    return isinstance(value, list)


def choice(record: RawRecord, field: str = "choice") -> int:
    value = raw(record, field)
    if record.from_text and isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value)
    if isinstance(value, bool) or value not in (0, 1) or not isinstance(value, int):
        raise RowError(reasons.BAD_CHOICE, field, f"'{field}' must be 0 or 1, got {_shown(value)}")
    return value


def number(record: RawRecord, field: str, value: Any = None) -> float:
    value = raw(record, field) if value is None else value
    if record.from_text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RowError(reasons.BAD_SCORE, field, f"'{field}' must be a finite number, got {_shown(value)}")
    return float(value)


def label(record: RawRecord, field: str = "label") -> bool:
    value = raw(record, field)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in TRUE_TEXTS:
            return True
        if lowered in FALSE_TEXTS:
            return False
    raise RowError(reasons.BAD_LABEL, field, f"'{field}' must be true or false, got {_shown(value)}")


def ground_truth(record: RawRecord, field: str = GROUND_TRUTH) -> str | int | float:
    """A reference answer, kept as given: a non-empty string or a finite number."""
    value = raw(record, field)
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    raise RowError(reasons.BAD_GROUND_TRUTH, field,
                   f"'{field}' must be a non-empty string or a finite number, got {_shown(value)}")
