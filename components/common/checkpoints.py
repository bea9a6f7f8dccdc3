"""Checkpoints that outlive a training task's process: where they live, which are complete, how often.

A training task that is killed (a preempted Vertex VM, kill -9, out of memory) and run again with the
same inputs resumes from its last checkpoint instead of from step 0. The checkpoints therefore live
outside the task's output directories: under the pipeline root (on Vertex a gs:// URI, read and
written through its /gcs/ mount) or under a folder the user names, in a folder named after the task's
identity, a digest of everything that decides its result. A rerun with equal inputs finds the folder;
a run with any input changed gets another one and starts over.

A checkpoint is a folder `checkpoint-<steps done>` (the Hugging Face Trainer's names), complete once
its marker file exists: the marker is written last, in one piece, so a process killed while saving
leaves a folder without one, which is ignored and removed. The marker rather than the rename of a
finished folder marks completion because Cloud Storage FUSE renames a folder object by object.
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from components.common.distributed import TrainingProcesses
from components.common.gcs_paths import GCS_FUSE_ROOT, GCS_SCHEME, fuse_path
from components.common.models import MODEL_REFERENCE_FILE

CHECKPOINTS_FOLDER = "checkpoints"  # under the pipeline root
CHECKPOINT_SHARE = 0.1  # without an explicit interval, a checkpoint about every 10% of the steps
CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "checkpoint_complete.json"
# Files up to this size count in a task's identity by their bytes; larger ones (model weights) by
# their size and modification time, since reading gigabytes at every task start costs minutes.
HASHED_FILE_BYTES = 256 * 2**20
EVENT_FILE_PATTERN = "events.out.tfevents.*"


def interval_steps(requested: int, total_steps: int) -> int:
    """Steps between two checkpoints: `requested` when positive, else about CHECKPOINT_SHARE of the
    steps, at least 1."""
    if requested > 0:
        return requested
    return max(1, round(total_steps * CHECKPOINT_SHARE))


def checkpoints_root(checkpoint_root: str, pipeline_root: str) -> Path | None:
    """The folder that holds every task's checkpoints, or None where none can be written.

    `checkpoint_root` when given, else CHECKPOINTS_FOLDER under `pipeline_root`. A gs:// location is
    used through Vertex's /gcs/ mount; another remote one (s3://, minio:// on a self-hosted Kubeflow)
    is no path a step can write to, nor is a pipeline-root placeholder the backend left unresolved
    (it would make a folder inside the container, gone at the retry): training then runs without.
    """
    root = checkpoint_root or (f"{pipeline_root.rstrip('/')}/{CHECKPOINTS_FOLDER}" if pipeline_root else "")
    if not root or "{{" in root:
        return None
    if root.startswith(GCS_SCHEME):
        return fuse_path(root) if GCS_FUSE_ROOT.is_dir() else None
    if "://" in root:
        return None
    return Path(root)


def _file_identity(path: Path) -> bytes:
    stat = path.stat()
    if stat.st_size <= HASHED_FILE_BYTES:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    return f"size {stat.st_size} modified {stat.st_mtime_ns}".encode()


def _referenced_directory(directory: Path) -> Path | None:
    """The local model directory a model artifact refers to, if it refers to one."""
    reference = directory / MODEL_REFERENCE_FILE
    if not reference.is_file():
        return None
    target = Path(json.loads(reference.read_text())["name_or_path"])
    return target if target.is_dir() else None


def input_identity(path: str | Path) -> str:
    """SHA-256 over what a file, or a directory's files (with their relative paths), hold.

    A model artifact that refers to a local directory (model_reference.json) also counts that
    directory's files. Where a file lives does not count: equal data in another run's folder has
    the same identity.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = [(path.name, path)] if path.is_file() else [
        (file.relative_to(path).as_posix(), file) for file in sorted(path.rglob("*")) if file.is_file()
    ]
    for name, file in files:
        digest.update(name.encode() + b"\0" + _file_identity(file) + b"\0")
    referenced = _referenced_directory(path) if path.is_dir() else None
    if referenced is not None:
        digest.update(b"refers to\0" + input_identity(referenced).encode())
    return digest.hexdigest()


def task_identity(stage: str, code_version: str, settings: dict[str, Any], inputs: dict[str, str | Path]) -> str:
    """SHA-256 over a training task's stage, code version, settings and the identity of each input."""
    description = {
        "stage": stage,
        "code_version": code_version,
        "settings": settings,
        "inputs": {name: input_identity(path) for name, path in inputs.items()},
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def task_checkpoint_dir(
    checkpoint_root: str,
    pipeline_root: str,
    stage: str,
    code_version: str,
    settings: dict[str, Any],
    inputs: dict[str, str | Path],
) -> str:
    """The folder of this task's checkpoints, as a string for the training function ("": none)."""
    root = checkpoints_root(checkpoint_root, pipeline_root)
    if root is None:
        location = checkpoint_root or pipeline_root
        print(f"training without checkpoints: {location!r} is no folder this step can write to (see checkpoint_root)")
        return ""
    folder = root / f"{stage}-{task_identity(stage, code_version, settings, inputs)[:16]}"
    print(f"checkpoints of this task: {folder}")
    return str(folder)


def training_checkpoint_dir(
    stage: str,
    config,
    base_model: str,
    data: dict[str, str],
    *,
    code_version: str,
    checkpoint_root: str,
    pipeline_root: str,
    **settings: Any,
) -> str:
    """`task_checkpoint_dir` of a stage that trains `base_model` on the `data` files: its settings are the
    fields of `config` (a dataclass) and any further `settings`."""
    return task_checkpoint_dir(
        checkpoint_root,
        pipeline_root,
        stage=stage,
        code_version=code_version,
        settings={**dataclasses.asdict(config), **settings},
        inputs={"base_model": base_model, **data},
    )


def checkpoint_path(folder: str | Path, steps_done: int) -> Path:
    return Path(folder) / f"{CHECKPOINT_PREFIX}{steps_done}"


def steps_done(checkpoint: Path) -> int:
    return int(checkpoint.name[len(CHECKPOINT_PREFIX):])


def _checkpoints(folder: Path) -> list[Path]:
    pattern = re.compile(re.escape(CHECKPOINT_PREFIX) + r"\d+")
    found = [p for p in folder.iterdir() if p.is_dir() and pattern.fullmatch(p.name)] if folder.is_dir() else []
    return sorted(found, key=steps_done)


def read_marker(checkpoint: Path) -> dict[str, Any] | None:
    """What the marker of `checkpoint` records, or None for an incomplete checkpoint."""
    try:
        return json.loads((checkpoint / COMPLETE_MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def mark_complete(checkpoint: Path, record: dict[str, Any]) -> None:
    """Write the marker (with `record`) once everything else in `checkpoint` is written.

    Written under a temporary name and renamed, so that the marker itself is never half there.
    """
    partial = checkpoint / f".{COMPLETE_MARKER}.partial"
    partial.write_text(json.dumps(record))
    os.replace(partial, checkpoint / COMPLETE_MARKER)


def _remove_incomplete_checkpoints(folder: Path) -> None:
    for checkpoint in _checkpoints(folder):
        if read_marker(checkpoint) is None:
            shutil.rmtree(checkpoint)


def checkpoint_to_resume(folder: str | Path, processes: TrainingProcesses) -> Path | None:
    """The newest complete checkpoint in `folder`, if these training processes can resume it.

    The first process first deletes the incomplete ones, left by a process killed while saving:
    they would be in the way when that step is saved again. A checkpoint written by another number
    of processes holds other per-process random states and another share of each batch per
    process: the run then starts over.
    """
    folder = Path(folder)
    if processes.is_main:
        _remove_incomplete_checkpoints(folder)
    processes.wait_for_everyone()
    complete = [checkpoint for checkpoint in _checkpoints(folder) if read_marker(checkpoint) is not None]
    if not complete:
        return None
    newest = complete[-1]
    written_by = read_marker(newest)["processes"]
    if written_by != processes.count:
        print(f"not resuming from {newest}: written by {written_by} training processes, this run has {processes.count}")
        return None
    return newest


def remove_older_checkpoints(folder: str | Path, newest: Path) -> None:
    """Keep only `newest` (complete) in `folder`: checkpoints are large."""
    for checkpoint in _checkpoints(Path(folder)):
        if checkpoint != newest:
            shutil.rmtree(checkpoint)


def remove_task_checkpoints(folder: str | Path) -> None:
    """Delete a finished task's checkpoints: its outputs hold everything they could give."""
    shutil.rmtree(folder, ignore_errors=True)


def remove_event_files(log_dir: str | Path) -> None:
    """Delete TensorBoard event files that an earlier, killed attempt of the task left in `log_dir`.

    The new attempt writes every step again (those it resumes past from its checkpoint), so the
    logs hold each step once.
    """
    for events in Path(log_dir).glob(EVENT_FILE_PATTERN):
        events.unlink()
