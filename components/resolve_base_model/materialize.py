"""Turning a resolved model reference into a `Model` artifact the other stages load from."""

from pathlib import Path

from components.common.models import write_model_reference
from components.common.gcs_paths import fuse_path
from components.resolve_base_model.references import ResolvedModel, build_builtin_model, resolve_model_reference


def download_gcs_prefix(uri: str, destination: Path) -> Path:
    """Copy every object under gs://BUCKET/PREFIX into `destination` (Application Default Credentials)."""
    from google.cloud import storage

    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    client = storage.Client()
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    count = 0
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        if blob.name.endswith("/"):
            continue
        target = destination / blob.name[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        count += 1
    if count == 0:
        raise FileNotFoundError(f"no objects under {uri}")
    return destination


def materialize_base_model(reference: str, artifact_dir: str | Path, seed: int) -> ResolvedModel:
    """Fill `artifact_dir` with the model (built-in, downloaded) or a reference to where it lives."""
    resolved = resolve_model_reference(reference)
    directory = Path(artifact_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if resolved.kind == "builtin":
        build_builtin_model(resolved.name_or_path, directory, seed)
    elif resolved.kind == "gcs":
        mounted = fuse_path(resolved.name_or_path)
        if mounted.is_dir():
            write_model_reference(directory, str(mounted), resolved.description)
        else:
            download_gcs_prefix(resolved.name_or_path, directory)
    else:
        write_model_reference(directory, resolved.name_or_path, resolved.description)
    return resolved
