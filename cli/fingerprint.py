"""Fingerprints of the files the data stages read, so that their cache sees an edit to the data.

A cached task is found by its arguments. A data stage's arguments name its dataset (a path, a glob,
a gs:// URI), not what is in it: fixed in place, a file would hit the cache and the old data would
be reused. `rlhf-pipeline run` and `submit` therefore pass each data stage a fingerprint of the files
it reads (pipeline parameters `preference_data_fingerprint` and `prompt_data_fingerprint`, which
the stages take as an input and otherwise ignore):

- local files (and Vertex's /gcs/ mount of a bucket): each file's name, size and SHA-256 of its
  bytes. The modification time is deliberately left out: a stage's output depends on the bytes
  alone, so `touch`, a copy or a fresh checkout that keeps the bytes keeps the fingerprint and the
  cached stage, while any change to the bytes (even one that keeps size and mtime) reruns it.
- gs:// objects: each object's name, generation and size, as listed by the Cloud Storage client.
  Cloud Storage gives an object a new generation whenever it is written, so an upload reruns the
  stage even when it holds the same bytes; no byte is downloaded to find this out.
- a Hugging Face hub dataset (`hf://datasets/...`): its name and the fingerprint `datasets` gives the
  split it loads, which follows the revision the dataset was downloaded at (it is loaded here as the
  stage loads it, from the cache or the hub). A folder of `save_to_disk` is hashed as local files, all
  of them (its arrow files are not data files to the stages).

The files are found exactly as the data stages find them (components/common/data/sources.py): one
file, every data file under a directory, or every file a glob matches.
"""

import fnmatch
import glob
import hashlib
import json
from pathlib import Path
from typing import Any

from components.common import gcs_paths
from components.common.data.hf_datasets import hub_dataset, is_saved_dataset, load_split
from components.common.data.sources import GLOB_CHARACTERS, container_of
from components.common.errors import UserInputError

HASH_CHUNK = 1 << 20
FINGERPRINTED = {
    "preference_data_fingerprint": ("preference_dataset", "eval_dataset"),
    "prompt_data_fingerprint": ("prompt_dataset", "eval_dataset"),
    "sft_data_fingerprint": ("sft_dataset",),
}


def _has_glob(text: str) -> bool:
    return any(character in GLOB_CHARACTERS for character in text)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _local_paths(spec: str) -> list[Path]:
    if _has_glob(spec):
        return sorted(p for p in (Path(m) for m in glob.glob(spec, recursive=True)) if p.is_file())
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        every_file = is_saved_dataset(path)
        return sorted(p for p in path.rglob("*") if p.is_file() and (every_file or container_of(p.name)))
    return []


def local_entries(spec: str, shown_as=str) -> list[dict[str, Any]]:
    paths = _local_paths(spec)
    if not paths:
        raise UserInputError(f"{spec}: no file to fingerprint (no such file, or nothing matches)")
    return [{"file": shown_as(p), "size": p.stat().st_size, "sha256": _sha256(p)} for p in paths]


def gcs_entries(uri: str, client=None) -> list[dict[str, Any]]:
    """Name, generation and size of every object the data stages would read under `uri`."""
    bucket_name, blob_path = gcs_paths.split_uri(uri)
    client = client or gcs_paths.storage_client(f"{uri}: cannot list the objects to fingerprint them for the cache")
    try:
        if _has_glob(blob_path):
            prefix = blob_path[: min(blob_path.index(c) for c in GLOB_CHARACTERS if c in blob_path)]
            blobs = [b for b in client.list_blobs(bucket_name, prefix=prefix) if fnmatch.fnmatch(b.name, blob_path)]
        else:
            blob = client.bucket(bucket_name).get_blob(blob_path) if blob_path else None
            if blob is not None:
                blobs = [blob]
            else:
                prefix = blob_path.rstrip("/") + "/" if blob_path else ""
                blobs = [b for b in client.list_blobs(bucket_name, prefix=prefix) if container_of(b.name)]
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(f"{uri}: cannot list the objects to fingerprint them for the cache ({reason})") from None
    blobs = [b for b in blobs if not b.name.endswith("/")]
    if not blobs:
        raise UserInputError(f"{uri}: no object to fingerprint (nothing matches)")
    return [{"object": f"{gcs_paths.GCS_SCHEME}{bucket_name}/{b.name}", "generation": str(b.generation),
             "size": b.size} for b in sorted(blobs, key=lambda b: b.name)]


def dataset_entries(spec: str, gcs_client=None) -> list[dict[str, Any]]:
    """What the fingerprint of one dataset argument is made of."""
    spec = (spec or "").strip()
    if hub_dataset(spec):
        split = load_split(spec)
        return [{"dataset": split.name, "fingerprint": split.fingerprint()}]
    if spec.startswith(gcs_paths.GCS_SCHEME):
        bucket, _ = gcs_paths.split_uri(spec)
        if (gcs_paths.GCS_FUSE_ROOT / bucket).is_dir():
            return local_entries(str(gcs_paths.fuse_path(spec)), gcs_paths.uri_of_fuse_path)
        return gcs_entries(spec, gcs_client)
    return local_entries(spec)


def fingerprint(specs: list[str], gcs_client=None) -> str:
    """`sha256:<hex>` over the entries of every dataset in `specs` (empty ones skipped)."""
    entries = {spec: dataset_entries(spec, gcs_client) for spec in specs if spec and str(spec).strip()}
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _dataset_files(value: Any) -> str:
    """The dataset argument as files to fingerprint: "" for none, and for `preference:chosen`, which
    names the prepared pairs (whose own step's fingerprint already covers them), not files."""
    from components.supervised_fine_tuning.data import PREFERENCE_CHOSEN

    text = str(value or "")
    return "" if text.strip() == PREFERENCE_CHOSEN else text


def data_fingerprints(values: dict[str, Any], gcs_client=None) -> dict[str, str]:
    """The fingerprint parameters for `values`: one per data stage, over the datasets it reads."""
    return {name: fingerprint([_dataset_files(values.get(p)) for p in datasets], gcs_client)
            for name, datasets in FINGERPRINTED.items()}
