"""Reading rows out of their containers, one at a time: JSON Lines, JSON arrays, CSV and Parquet.

A row that cannot be read becomes a reject naming its file and line; nothing is held in memory
beyond the row being read (a row over `MAX_ROW_BYTES` is skipped without being kept whole).
"""

import csv
import io
import json
from typing import Any, BinaryIO, Iterator

from components.common.data import reasons
from components.common.data.records import RawRecord, Reject, RowRef
from components.common.data.sources import DataFile
from components.common.errors import UserInputError

MAX_ROW_BYTES = 16 * 1024 * 1024
SKIP_CHUNK_BYTES = 1024 * 1024
JSON_ARRAY_CHUNK_CHARS = 1024 * 1024
BINARY_SNIFF_BYTES = 8192
PARQUET_BATCH_ROWS = 4096
UTF8_BOM = "\ufeff"


def _reject(ref: RowRef, reason: str, detail: str, field: str = "") -> RawRecord:
    return RawRecord(ref, error=Reject(ref, reason, field, detail))


def _object_or_reject(ref: RowRef, value: Any, from_text: bool = False) -> RawRecord:
    if not isinstance(value, dict):
        return _reject(ref, reasons.NOT_AN_OBJECT, f"expected a JSON object, got {type(value).__name__}")
    return RawRecord(ref, value=value, from_text=from_text)


def _refuse_binary(data_file: DataFile, head: bytes) -> None:
    position = head.find(b"\0")
    if position >= 0:
        raise UserInputError(
            f"{data_file.name}: this is a binary file, not {data_file.container.upper()} text "
            f"(a NUL byte at offset {position}); expected UTF-8 text with one JSON object a line"
        )


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when over MAX_ROW_BYTES, size in bytes), blank lines included."""
    number = 0
    while True:
        line = stream.readline(MAX_ROW_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
            size = len(line)
            while True:  # skip the rest of the oversized line without keeping it
                chunk = stream.readline(SKIP_CHUNK_BYTES)
                size += len(chunk)
                if not chunk or chunk.endswith(b"\n"):
                    break
            yield number, None, size
        else:
            yield number, line, len(line)


def _decode(ref: RowRef, raw: bytes) -> str | RawRecord:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return _reject(ref, reasons.NOT_UTF8, f"bytes that are not UTF-8 at byte {error.start} of the row")


def read_jsonl(data_file: DataFile, stream: BinaryIO) -> Iterator[RawRecord]:
    for number, raw, size in _lines(stream):
        ref = RowRef(data_file.name, number)
        if raw is None:
            yield _reject(ref, reasons.ROW_TOO_LARGE, f"a row of {size} bytes (the limit is {MAX_ROW_BYTES})")
            continue
        text = _decode(ref, raw)
        if isinstance(text, RawRecord):
            yield text
            continue
        if number == 1:
            text = text.lstrip(UTF8_BOM)
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            yield _reject(ref, reasons.MALFORMED_JSON, f"malformed JSON ({error.msg} at column {error.colno})")
            continue
        yield _object_or_reject(ref, value)


def read_json_array(data_file: DataFile, stream: BinaryIO) -> Iterator[RawRecord]:
    """The elements of one top-level JSON array, decoded one at a time from a growing buffer."""
    reader = io.TextIOWrapper(stream, encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    buffer, position, index, exhausted = "", 0, 0, False

    def fill() -> bool:
        nonlocal buffer, position
        chunk = reader.read(JSON_ARRAY_CHUNK_CHARS)
        buffer, position = buffer[position:] + chunk, 0
        return bool(chunk)

    def skip_space() -> None:
        nonlocal position, exhausted
        while True:
            while position < len(buffer) and buffer[position].isspace():
                position += 1
            if position < len(buffer) or exhausted:
                return
            exhausted = not fill()

    def fail(what: str) -> UserInputError:
        return UserInputError(
            f"{data_file.name}, row {index}: malformed JSON ({what}); a .json file must hold one JSON array "
            "of objects (or one JSON object a line)"
        )

    try:
        exhausted = not fill()
        skip_space()
        if buffer[position:position + 1] != "[":
            raise fail("expected '[' at the start")
        position += 1
        skip_space()
        if buffer[position:position + 1] == "]":
            return
        while True:
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, position)
                    break
                except json.JSONDecodeError as error:
                    if exhausted:
                        raise fail(error.msg) from None
                    exhausted = not fill()
            if end - position > MAX_ROW_BYTES:
                yield _reject(RowRef(data_file.name, index, "row"), reasons.ROW_TOO_LARGE,
                              f"a row of about {end - position} characters (the limit is {MAX_ROW_BYTES})")
            else:
                yield _object_or_reject(RowRef(data_file.name, index, "row"), value)
            position = end
            index += 1
            skip_space()
            separator = buffer[position:position + 1]
            position += 1
            if separator == "]":
                return
            if separator != ",":
                raise fail(f"expected ',' or ']' after the element, found {separator!r}")
            skip_space()
    except UnicodeDecodeError as error:
        raise UserInputError(
            f"{data_file.name}, row {index}: bytes that are not UTF-8 ({error.reason}); a .json file must be UTF-8"
        ) from None


def read_csv(data_file: DataFile, stream: BinaryIO) -> Iterator[RawRecord]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    csv.field_size_limit(MAX_ROW_BYTES)
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise UserInputError(f"{data_file.name}, line 1: the CSV header cannot be read ({error})") from None
    header = [name.strip() for name in header]
    start = reader.line_num + 1
    while True:
        ref = RowRef(data_file.name, start)
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield _reject(ref, reasons.MALFORMED_CSV, f"not a valid CSV record ({error})")
            start = reader.line_num + 1
            continue
        start = reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if any(_has_surrogates(cell) for cell in cells):
            yield _reject(ref, reasons.NOT_UTF8, "bytes that are not UTF-8 in the record")
            continue
        if len(cells) != len(header):
            yield _reject(ref, reasons.MALFORMED_CSV,
                          f"{len(cells)} cells where the header names {len(header)} columns")
            continue
        yield RawRecord(ref, value=dict(zip(header, cells)), from_text=True)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def read_parquet(data_file: DataFile, stream: BinaryIO) -> Iterator[RawRecord]:
    import pyarrow
    import pyarrow.parquet as parquet

    try:
        table = parquet.ParquetFile(stream)
    except (pyarrow.ArrowException, OSError) as error:
        raise UserInputError(f"{data_file.name}: not a readable Parquet file ({error})") from None
    index = 0
    for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for value in batch.to_pylist():
            yield _object_or_reject(RowRef(data_file.name, index, "row"), value)
            index += 1


READERS = {"jsonl": read_jsonl, "json": read_json_array, "csv": read_csv, "parquet": read_parquet}


def read_records(data_file: DataFile) -> Iterator[RawRecord]:
    """Every row of one file, in order, as a value or a reject."""
    try:
        with data_file.open() as stream:
            if data_file.container == "parquet":
                yield from read_parquet(data_file, stream)
                return
            buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)
            head = buffered.peek(BINARY_SNIFF_BYTES)[:BINARY_SNIFF_BYTES]
            _refuse_binary(data_file, head)
            container = data_file.container
            if container == "json" and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
                container = "jsonl"  # a .json file that holds JSON Lines, as Vertex's own samples do
            yield from READERS[container](data_file, buffered)
    except (OSError, EOFError) as error:
        raise UserInputError(f"{data_file.name}: cannot be read ({error})") from None
