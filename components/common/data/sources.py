"""Where a dataset's bytes come from: a file, a directory or glob of shards, or a `gs://` URI.

(A Hugging Face hub dataset or a folder of `save_to_disk` is loaded by `datasets` instead: hf_datasets.py.)

On Vertex, Cloud Storage buckets are mounted under `/gcs/BUCKET/`; a `gs://` URI is read from there
when the mount exists, and through the Cloud Storage client (default credentials) otherwise.
"""

import fnmatch
import glob
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from components.common import gcs_paths
from components.common.data.hf_datasets import HUB_SYNTAX
from components.common.errors import UserInputError

CONTAINER_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
COMPRESSED_SUFFIX = ".gz"
GLOB_CHARACTERS = frozenset("*?[")
ACCEPTED = ("a .jsonl, .jsonl.gz, .json, .csv or .parquet file, a directory or glob of them, a gs:// URI, a local "
            f"folder of datasets' save_to_disk, or a Hugging Face dataset {HUB_SYNTAX}")


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name as the user knows it, its container and how to open it."""

    name: str
    container: str  # "jsonl", "json", "csv" or "parquet"
    compressed: bool
    _open: Callable[[], BinaryIO]

    def open(self) -> BinaryIO:
        """A binary stream of the file's (decompressed) bytes."""
        stream = self._open()
        return gzip.GzipFile(fileobj=stream, mode="rb") if self.compressed else stream


def container_of(name: str) -> tuple[str, bool] | None:
    """(container, compressed) from a file name, or None when the suffix is not a data container."""
    lowered = name.lower()
    compressed = lowered.endswith(COMPRESSED_SUFFIX)
    if compressed:
        lowered = lowered[: -len(COMPRESSED_SUFFIX)]
    for suffix in CONTAINER_SUFFIXES:
        if lowered.endswith(suffix):
            return suffix.lstrip("."), compressed
    return None


def _has_glob(text: str) -> bool:
    return any(character in GLOB_CHARACTERS for character in text)


def _local_file(path: Path, shown_as: str | None = None) -> DataFile:
    # A file named explicitly whose suffix says nothing is read as JSON Lines (Vertex's own layout).
    container, compressed = container_of(path.name) or ("jsonl", False)
    return DataFile(shown_as or str(path), container, compressed, lambda: open(path, "rb"))


def _local_files(spec: str, shown_as: Callable[[Path], str]) -> list[DataFile]:
    if _has_glob(spec):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise UserInputError(f"{spec}: no file matches this pattern (expected {ACCEPTED})")
        return [_local_file(p, shown_as(p)) for p in files]
    path = Path(spec)
    if path.is_file():
        return [_local_file(path, shown_as(path))]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and container_of(p.name))
        if not files:
            raise UserInputError(
                f"{spec}: the directory holds no data file (expected .jsonl, .jsonl.gz, .json, .csv or .parquet)"
            )
        return [_local_file(p, shown_as(p)) for p in files]
    raise UserInputError(f"{spec}: no such file or directory (expected {ACCEPTED})")


def gcs_client(uri: str):
    """The Cloud Storage client that reads `uri`; a UserInputError naming it when none can be made."""
    return gcs_paths.storage_client(f"{uri}: cannot read from Cloud Storage", "copy the data to a local path")


def _gcs_files(uri: str) -> list[DataFile]:
    bucket_name, blob_path = gcs_paths.split_uri(uri)
    client = gcs_client(uri)
    try:
        bucket = client.bucket(bucket_name)
        if _has_glob(blob_path):
            prefix = blob_path[: min(blob_path.index(c) for c in GLOB_CHARACTERS if c in blob_path)]
            blobs = [b for b in client.list_blobs(bucket, prefix=prefix) if fnmatch.fnmatch(b.name, blob_path)]
        else:
            blob = bucket.blob(blob_path)
            if blob_path and blob.exists():
                blobs = [blob]
            else:
                prefix = blob_path.rstrip("/") + "/" if blob_path else ""
                blobs = [b for b in client.list_blobs(bucket, prefix=prefix) if container_of(b.name)]
    except Exception as error:
        raise UserInputError(f"{uri}: cannot list the objects ({str(error).splitlines()[0]})") from None
    if not blobs:
        raise UserInputError(f"{uri}: no object matches (expected {ACCEPTED})")
    files = []
    for blob in sorted(blobs, key=lambda b: b.name):
        container, compressed = container_of(blob.name) or ("jsonl", False)
        files.append(
            DataFile(f"{gcs_paths.GCS_SCHEME}{bucket_name}/{blob.name}", container, compressed,
                     lambda blob=blob: blob.open("rb"))
        )
    return files


def resolve(spec: str) -> list[DataFile]:
    """The files a dataset argument names, in a stable order. Raises UserInputError when there are none."""
    spec = (spec or "").strip()
    if not spec:
        raise UserInputError(f"no dataset given (expected {ACCEPTED})")
    if spec.startswith(gcs_paths.GCS_SCHEME):
        bucket, _ = gcs_paths.split_uri(spec)
        if (gcs_paths.GCS_FUSE_ROOT / bucket).is_dir():
            mounted = str(gcs_paths.fuse_path(spec))

            def as_uri(path: Path) -> str:
                return gcs_paths.uri_of_fuse_path(path)

            return _local_files(mounted, as_uri)
        return _gcs_files(spec)
    return _local_files(spec, str)
