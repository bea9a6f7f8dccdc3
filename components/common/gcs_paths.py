"""Cloud Storage locations: `gs://BUCKET/PATH` URIs and Vertex's `/gcs/BUCKET/PATH` mounts of them."""

from pathlib import Path

from components.common.errors import UserInputError

GCS_SCHEME = "gs://"
GCS_FUSE_ROOT = Path("/gcs")  # where Vertex AI mounts every bucket inside a pipeline step


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://BUCKET/PATH` as (BUCKET, PATH)."""
    bucket, _, blob_path = uri[len(GCS_SCHEME):].partition("/")
    if not uri.startswith(GCS_SCHEME) or not bucket:
        raise UserInputError(f"{uri}: not a valid gs:// URI (expected gs://BUCKET/PATH)")
    return bucket, blob_path


def fuse_path(uri: str) -> Path:
    """Where a pipeline step on Vertex sees gs://BUCKET/PATH: /gcs/BUCKET/PATH."""
    bucket, blob_path = split_uri(uri)
    return GCS_FUSE_ROOT / bucket / blob_path


def uri_of_fuse_path(path: str | Path) -> str | None:
    """The gs:// URI of a path under the /gcs/ mount; None for any other path."""
    path = Path(path)
    if not path.is_relative_to(GCS_FUSE_ROOT) or path == GCS_FUSE_ROOT:
        return None
    return GCS_SCHEME + path.relative_to(GCS_FUSE_ROOT).as_posix()


def storage_client(failure: str, alternative: str = ""):
    """A Cloud Storage client with the Application Default Credentials. Without credentials, a project or
    the library, raises UserInputError: `failure`, the reason, how to log in, and `alternative` if any."""
    try:
        from google.cloud import storage

        return storage.Client()
    except Exception as error:  # no credentials, no project, no library: all are the user's setup
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        otherwise = f", or {alternative}" if alternative else ""
        raise UserInputError(f"{failure} ({reason}); run `gcloud auth application-default login` or set "
                             f"GOOGLE_APPLICATION_CREDENTIALS{otherwise}") from None
