"""Reading a whole dataset into canonical examples, streamed, with its books kept as it goes."""

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Iterator

from tqdm import tqdm

from components.common import defaults
from components.common.data import formats, hf_datasets
from components.common.data.formats import Converter
from components.common.data.ledger import Ledger
from components.common.data.lengths import TRUNCATE, LengthChecker, LengthStats
from components.common.data.readers import read_records
from components.common.data.records import Conversion, PromptRow, RawRecord
from components.common.data.sources import resolve
from components.common.errors import UserInputError

PREFERENCE, PROMPT = "preference", "prompt"
DETECTION_ROWS = 100
LENGTH_CHECK_BATCH = 2048
DEFAULT_MAX_BAD_ROW_FRACTION = 0.01
PROGRESS_DELAY_S = 2.0  # a progress bar only for datasets that take longer than this


@dataclass(frozen=True)
class DataSettings:
    """How rows are read and checked; shared by both preparation stages and `validate-data`."""

    format: str = formats.AUTO  # the preference layout, or "auto" to detect it
    instruction: str | None = None
    prompt_sequence_length: int = defaults.PROMPT_SEQUENCE_LENGTH
    target_sequence_length: int = defaults.TARGET_SEQUENCE_LENGTH
    length_policy: str = TRUNCATE  # "truncate" or "drop" over-long prompts and answers
    max_bad_row_fraction: float = DEFAULT_MAX_BAD_ROW_FRACTION
    system_prompt: str | None = None  # the system message of every prompt that has none

    def __post_init__(self):
        if self.format != formats.AUTO and self.format not in formats.PREFERENCE_FORMATS:
            raise UserInputError(f"unknown format {self.format!r}; expected auto or one of "
                                 f"{', '.join(formats.PREFERENCE_FORMATS)}")
        if not 0.0 <= self.max_bad_row_fraction <= 1.0:
            raise UserInputError(f"max_bad_row_fraction must be between 0 and 1, got {self.max_bad_row_fraction}")
        if self.prompt_sequence_length <= 0 or self.target_sequence_length <= 0:
            raise UserInputError("prompt_sequence_length and target_sequence_length must be positive")


@dataclass(frozen=True)
class Layout:
    kind: str  # PREFERENCE or PROMPT
    name: str  # a key of formats.PREFERENCE_FORMATS or formats.PROMPT_FORMATS


@dataclass
class LoadedDataset:
    examples: list
    ledger: Ledger
    lengths: LengthStats = field(default_factory=LengthStats)


def _records(source: str) -> tuple[list[str], Iterator[RawRecord]]:
    """The names of what `source` reads (files, or a dataset's split) and its rows, one at a time."""
    split = hf_datasets.load_split(source)
    if split is not None:
        return [split.name], hf_datasets.read_rows(split)
    files = resolve(source)
    return [f.name for f in files], itertools.chain.from_iterable(read_records(f) for f in files)


def _fields_message(source: str, record: RawRecord, expected: dict[str, str]) -> str:
    accepted = "; ".join(f"{name}: {fields}" for name, fields in expected.items())
    return (f"{record.ref}: the fields ({', '.join(sorted(record.value)) or 'none'}) match no known layout of "
            f"{source}. Accepted layouts: {accepted}")


def detect_layout(source: str, preference_format: str = formats.AUTO,
                  accept: tuple[str, ...] = (PREFERENCE, PROMPT)) -> Layout | None:
    """The layout of a dataset from its first well-formed rows; None when no row can be read at all.

    Raises UserInputError when the rows match none of the accepted kinds of layout.
    """
    _, records = _records(source)
    first = None
    for record in itertools.islice((r for r in records if r.value is not None), DETECTION_ROWS):
        first = first or record
        if PREFERENCE in accept:
            if preference_format != formats.AUTO:
                return Layout(PREFERENCE, preference_format)
            name = formats.detect_preference_format(record.value)
            if name:
                return Layout(PREFERENCE, name)
        if PROMPT in accept:
            name = formats.detect_prompt_format(record.value)
            if name:
                return Layout(PROMPT, name)
    if first is None:
        return None
    expected = {}
    if PREFERENCE in accept:
        expected.update({f"preference {k}": v for k, v in formats.PREFERENCE_FORMATS.items()})
    if PROMPT in accept:
        expected.update({f"prompt {k}": v for k, v in formats.PROMPT_FORMATS.items()})
    raise UserInputError(_fields_message(source, first, expected))


class PromptsOfPairs(Converter):
    """The prompts of a preference dataset's rows (an eval_dataset of pairs used for eval prompts)."""

    def __init__(self, pairs: Converter):
        super().__init__(pairs.instruction, pairs.system_prompt)
        self.pairs = pairs
        self.labels = pairs.labels

    def convert(self, record):
        return self._prompts(self.pairs.convert(record))

    def finish(self):
        return self._prompts(self.pairs.finish())

    @staticmethod
    def _prompts(conversion: Conversion) -> Conversion:
        conversion.examples = [PromptRow(p.prompt, p.ref, p.prompt_messages) for p in conversion.examples]
        return conversion


def _converter(layout: Layout, want: str, settings: DataSettings) -> Converter:
    if layout.kind == PROMPT:
        return formats.prompt_converter(layout.name, settings.instruction, settings.system_prompt)
    pairs = formats.preference_converter(layout.name, settings.instruction, settings.system_prompt)
    return pairs if want == PREFERENCE else PromptsOfPairs(pairs)


def _digest(key: tuple[str, ...]) -> bytes:
    return hashlib.blake2b("\x1f".join(key).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def load_dataset(source: str, want: str, settings: DataSettings, tokenizer=None,
                 layout: Layout | None = None) -> LoadedDataset:
    """Every usable example of `source` as `want` (PREFERENCE pairs or PROMPT rows), deduplicated.

    Raises UserInputError when the dataset is empty, unusable, or has more bad rows than
    `settings.max_bad_row_fraction` allows (the message sums the reasons and shows the first rows).
    """
    if want == PREFERENCE:
        layout = layout or detect_layout(source, settings.format, accept=(PREFERENCE,))
    else:
        layout = layout or detect_layout(source)  # `format` names preference layouts only
    names, records = _records(source)
    ledger = Ledger(source, want, layout.name if layout else "unknown", files=names)
    checker = LengthChecker(tokenizer, settings.prompt_sequence_length, settings.target_sequence_length,
                            settings.length_policy)
    converter = _converter(layout, want, settings) if layout else None
    examples, pending, seen = [], [], set()

    def flush() -> None:
        kept, rejects = checker.check(pending)
        ledger.rejects.extend(rejects)
        for example in kept:
            digest = _digest(example.key())
            if digest in seen:
                ledger.duplicates += 1
            else:
                seen.add(digest)
                examples.append(example)
        pending.clear()

    def absorb(conversion: Conversion) -> None:
        ledger.rejects.extend(conversion.rejects)
        ledger.expansion += conversion.pairs_made - conversion.rows_paired
        pending.extend(conversion.examples)
        if len(pending) >= LENGTH_CHECK_BATCH:
            flush()

    for record in tqdm(records, desc=f"reading {source}", unit=" rows", delay=PROGRESS_DELAY_S,
                       mininterval=PROGRESS_DELAY_S):
        ledger.input_rows += 1
        if record.error is not None:
            ledger.rejects.append(record.error)
        else:
            absorb(converter.convert(record))
    if converter:
        absorb(converter.finish())
        ledger.labels = dict(converter.labels)
    flush()
    ledger.truncated = dict(checker.stats.truncated)
    ledger.used = len(examples)
    _check_usable(ledger, settings.max_bad_row_fraction)
    return LoadedDataset(examples, ledger, checker.stats)


def _check_usable(ledger: Ledger, max_bad_row_fraction: float) -> None:
    if ledger.input_rows == 0:
        raise UserInputError(f"{ledger.source}: holds no rows (it is empty); expected one JSON object a line")
    bad = ledger.bad_rows
    units = ledger.input_rows + ledger.expansion  # rows, or rows and the pairs expanded from them
    if bad / units > max_bad_row_fraction:
        what = "rows and pairs" if ledger.expansion else "rows"
        raise UserInputError(
            f"{ledger.source}: {bad} of {units} {what} are bad ({bad / units:.1%}), "
            f"more than max_bad_row_fraction={max_bad_row_fraction:g}: {ledger.reasons_summary()}"
        )
    if ledger.used == 0:
        raise UserInputError(f"{ledger.source}: no usable rows remain: {ledger.reasons_summary()}")
