"""A version string that changes whenever the code a pipeline step runs changes.

KFP's cache key covers a lightweight component's wrapper source and its inputs, not the package the
wrapper imports. Every component therefore takes this string as an input: editing the trainers
invalidates the cached training steps, while an unchanged tree keeps hitting the cache. It hashes what
the steps run (`components/` and the sample tasks' `embedded_default/`), not the command line and DAG
code of `pipeline/`, which no step imports: editing the console keeps every cached step.
"""

import functools
import hashlib
from importlib import metadata
from pathlib import Path

PACKAGE_NAME = "rlhf-pipeline"
_SOURCE_ROOTS = ("components", "embedded_default")  # what the steps import; never pipeline/


def _package_version() -> str:
    try:
        return metadata.version(PACKAGE_NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def source_digest(repo_root: Path | None = None) -> str:
    """SHA-256 over the relative path and bytes of every Python file that the steps run."""
    root = repo_root or Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for package in _SOURCE_ROOTS:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@functools.cache
def code_version() -> str:
    """``<package version>+<first 12 hex digits of the source digest>``."""
    return f"{_package_version()}+{source_digest()[:12]}"
