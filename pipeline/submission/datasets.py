"""Checking the datasets a submission names before the job starts.

Local files are read in full by the same code the data-preparation steps run. Cloud Storage
datasets (gs:// URIs, or Vertex's /gcs/ mounts of them) are checked as far as is cheap: the objects
exist and their first rows parse into a known layout.
"""

import itertools
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from components.common.errors import UserInputError
from components.common.gcs_paths import GCS_SCHEME, uri_of_fuse_path

FIRST_ROWS = 20
PREFERENCE_DATASET, PROMPT_DATASET, EVAL_DATASET = "preference_dataset", "prompt_dataset", "eval_dataset"


def as_gcs_uri(path: str) -> str:
    """`/gcs/BUCKET/PATH` (Vertex's Cloud Storage mount) as `gs://BUCKET/PATH`; other paths unchanged."""
    if not Path(path).exists():
        return uri_of_fuse_path(path) or path
    return path


def _settings(values: dict[str, Any]):
    from components.common.data.loading import DataSettings

    names = {f.name for f in fields(DataSettings)}
    return DataSettings(**{k: v for k, v in values.items() if k in names and v is not None})


def _check_remote(uri: str, accept: tuple[str, ...]) -> str:
    from components.common.data.loading import detect_layout
    from components.common.data.readers import read_records
    from components.common.data.sources import resolve

    files = resolve(uri)
    for record in itertools.islice(read_records(files[0]), FIRST_ROWS):
        if record.error is not None:
            raise UserInputError(f"{record.error} (in the first {FIRST_ROWS} rows)")
    layout = detect_layout(uri, accept=accept)
    if layout is None:
        raise UserInputError(f"{uri}: no row could be read")
    return f"{len(files)} file(s), first rows read as {layout.kind} rows ({layout.name})"


def _check_local(path: str, want: str | None, settings) -> str:
    from components.common.data.loading import detect_layout, load_dataset

    layout = None
    if want is None:  # the eval dataset may hold preference pairs or prompts
        layout = detect_layout(path)
        if layout is None:
            raise UserInputError(f"{path}: no row could be read")
        want = layout.kind
    loaded = load_dataset(path, want, settings, layout=layout)
    ledger = loaded.ledger
    return f"{ledger.used} usable {want} rows of {ledger.input_rows}"


def check_datasets(values: dict[str, Any], report: Callable[[str], None] = print) -> None:
    """Check every dataset parameter in `values`; raise UserInputError naming the parameter at fault."""
    from components.common.data.loading import PREFERENCE, PROMPT

    settings = _settings(values)
    wanted = {PREFERENCE_DATASET: PREFERENCE, PROMPT_DATASET: PROMPT, EVAL_DATASET: None}
    for name, want in wanted.items():
        given = values.get(name)
        if not given:
            continue
        source = as_gcs_uri(str(given))
        try:
            if source.startswith(GCS_SCHEME):
                accept = (want,) if want else (PREFERENCE, PROMPT)
                outcome = _check_remote(source, accept)
            elif not Path(source).exists():
                raise UserInputError(
                    f"{source} does not exist here; give a gs:// URI, or pass --skip-data-check if the path "
                    "exists only inside the container image")
            else:
                outcome = _check_local(source, want, settings)
                outcome += " (a local path: the job reads it inside its container, so the image must hold it)"
        except UserInputError as error:
            raise UserInputError(f"{name}: {error}") from None
        report(f"checked {name}: {outcome}")
