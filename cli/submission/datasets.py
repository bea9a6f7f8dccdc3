"""Checking the datasets and the reward function a submission names before the job starts.

Local files are read in full by the same code the data-preparation steps run. Cloud Storage
datasets (gs:// URIs, or Vertex's /gcs/ mounts of them) are checked as far as is cheap: the objects
exist and their first rows parse into a known layout. A Hugging Face hub dataset (hf://datasets/...)
is loaded here as the steps load it (from the local datasets cache, or downloaded into it) and read
in full. The reward function is loaded here as the RL step loads it, a file under /gcs/ once
downloaded from Cloud Storage.
"""

import itertools
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from components.common.errors import UserInputError
from components.common.gcs_paths import GCS_SCHEME, split_uri, uri_of_fuse_path

FIRST_ROWS = 20
PREFERENCE_DATASET, PROMPT_DATASET, EVAL_DATASET = "preference_dataset", "prompt_dataset", "eval_dataset"
REWARD_FUNCTION = "reward_function"
ONLY_IN_IMAGE = "pass --skip-data-check if it is only there"


def as_gcs_uri(path: str) -> str:
    """`/gcs/BUCKET/PATH` (Vertex's Cloud Storage mount) as `gs://BUCKET/PATH`; other paths unchanged."""
    if not Path(path).exists():
        return uri_of_fuse_path(path) or path
    return path


def _settings(values: dict[str, Any]):
    from components.common.data.loading import DataSettings

    names = {f.name for f in fields(DataSettings)}
    return DataSettings(**{k: v for k, v in values.items() if k in names and v is not None})


def _check_remote(uri: str, accept: tuple[str, ...]) -> tuple[str, str]:
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
    return f"{len(files)} file(s), first rows read as {layout.kind} rows ({layout.name})", layout.kind


def _check_local(path: str, want: str | None, settings) -> tuple[str, str]:
    from components.common.data.loading import detect_layout, load_dataset

    layout = None
    if want is None:  # the eval dataset may hold preference pairs or prompts
        layout = detect_layout(path)
        if layout is None:
            raise UserInputError(f"{path}: no row could be read")
        want = layout.kind
    loaded = load_dataset(path, want, settings, layout=layout)
    ledger = loaded.ledger
    return f"{ledger.used} usable {want} rows of {ledger.input_rows}", want


def check_datasets(values: dict[str, Any], report: Callable[[str], None] = print) -> None:
    """Check every dataset parameter in `values`; raise UserInputError naming the parameter at fault.

    An eval_dataset of prompts leaves the reward model's eval pairs to eval_split_fraction, which must
    then hold some out (components/common/data/preparation.py)."""
    from components.common.data.hf_datasets import hub_dataset
    from components.common.data.loading import PREFERENCE, PROMPT
    from components.common.data.preparation import no_held_out_pairs

    settings = _settings(values)
    wanted = {PREFERENCE_DATASET: PREFERENCE, PROMPT_DATASET: PROMPT, EVAL_DATASET: None}
    no_pairs_split_off = bool(values.get(PREFERENCE_DATASET)) and values.get("eval_split_fraction") == 0
    for name, want in wanted.items():
        given = values.get(name)
        if not given:
            continue
        source = as_gcs_uri(str(given))
        try:
            if source.startswith(GCS_SCHEME):
                accept = (want,) if want else (PREFERENCE, PROMPT)
                outcome, kind = _check_remote(source, accept)
            elif hub_dataset(source):
                outcome, kind = _check_local(source, want, settings)
                outcome += " (a Hugging Face dataset: the job loads it where it runs, which must reach the hub)"
            elif not Path(source).exists():
                raise UserInputError(
                    f"{source} does not exist here; give a gs:// URI, or pass --skip-data-check if the path "
                    "exists only inside the container image")
            else:
                outcome, kind = _check_local(source, want, settings)
                outcome += " (a local path: the job reads it inside its container, so the image must hold it)"
            if name == EVAL_DATASET and kind == PROMPT and no_pairs_split_off:
                raise UserInputError(no_held_out_pairs(source))
        except UserInputError as error:
            raise UserInputError(f"{name}: {error}") from None
        report(f"checked {name}: {outcome}")


def _download(uri: str, directory: str) -> Path:
    """The Cloud Storage object `uri`, downloaded into `directory` under its own name."""
    from google.api_core.exceptions import NotFound

    from components.common.data.sources import gcs_client

    bucket, path = split_uri(uri)
    blob = gcs_client(uri).bucket(bucket).blob(path)
    local = Path(directory) / Path(path).name
    try:
        local.write_bytes(blob.download_as_bytes())
    except NotFound:
        raise UserInputError(f"{uri} does not exist; upload the file there") from None
    except Exception as error:
        raise UserInputError(f"{uri}: cannot read the object ({str(error).splitlines()[0]})") from None
    return local


def _load(spec: str) -> str:
    """Load the reward function `spec` as the RL step would; what was loaded, in words."""
    from components.common.reward_functions import BUILTINS, load_reward_function, names_a_file

    if spec in BUILTINS:
        return "built in"
    target, _, name = spec.rpartition(":")
    source = as_gcs_uri(target)
    if source != target:  # a file under /gcs/, not mounted here (the job reads /gcs/ paths only, not gs:// URIs)
        with tempfile.TemporaryDirectory() as directory:
            local = str(_download(source, directory))
            try:
                load_reward_function(f"{local}:{name}")
            except UserInputError as error:
                raise UserInputError(str(error).replace(local, target)) from None
        return f"read from {source} and loaded"
    if not names_a_file(target):
        try:
            load_reward_function(spec)
        except UserInputError as error:
            if not isinstance(error.__cause__, ImportError):
                raise
            raise UserInputError(f"{error}; the module must be installed in the container image "
                                 f"({ONLY_IN_IMAGE})") from None
        return "imported here (the container image must hold the module too)"
    if not Path(target).exists():
        raise UserInputError(f"{target} does not exist here; put the file under /gcs/BUCKET/... (gs://BUCKET/...) "
                             f"or in the container image ({ONLY_IN_IMAGE})")
    load_reward_function(spec)
    return "loaded (a local path: the job loads it inside its container, so the image must hold it)"


def check_reward_function(values: dict[str, Any], report: Callable[[str], None] = print) -> None:
    """Check that the job can load the reward_function parameter; raise UserInputError naming it.

    A file under /gcs/BUCKET/ must exist on Cloud Storage; it, a local file or a module is loaded
    (components/common/reward_functions.py), so that a wrong name or signature is refused too."""
    spec = str(values.get(REWARD_FUNCTION) or "").strip()
    if not spec:
        return
    try:
        outcome = _load(spec)
    except UserInputError as error:
        message = str(error)
        raise UserInputError(message if message.startswith(REWARD_FUNCTION) else f"{REWARD_FUNCTION}: {message}"
                             ) from None
    report(f"checked {REWARD_FUNCTION}: {spec}, {outcome}")
