"""The run directories under an output dir: what each holds (`rlhf-pipeline runs`) and removing old ones.

A run directory is whole by itself (cli/local_run.py places the cached stages' outputs in it
as hard links), so removing one never breaks another; it takes with it the cache entries whose
outputs it holds (kfp.local would treat them as misses anyway), so the next run with the same
inputs runs those stages again.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import UserInputError
from components.evaluate.report_content import format_number
from cli.local_run import CACHE_DIR, REQUEST_FILE, RUN_NAME

SUCCEEDED, FAILED, RUNNING, UNFINISHED = "succeeded", "failed", "running", "unfinished"


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path
    status: str  # succeeded, failed (a stage failed), running, or unfinished (stopped before its end)
    algorithm: str  # "" when the run has no summary
    headline: str  # its main figure (see `headline`); "" when the run has no summary
    size_bytes: int  # every file once, hard links included
    cached_from: tuple[str, ...]  # the runs whose cached outputs this run reuses


def headline(summary: dict) -> str:
    """The run's main figure: gold score, else rule-reward accuracy, else win rate, else implicit-reward accuracy."""
    policy = summary.get("policy", {})
    for label, base, tuned in (("gold score", "base_gold_score", "tuned_gold_score"),
                               ("accuracy", "base_accuracy", "tuned_accuracy")):
        if policy.get(tuned) is not None:
            return f"{label} {format_number(policy[base])} -> {format_number(policy[tuned])}"
    for label, name in (("win rate", "win_rate"), ("implicit-reward accuracy", "implicit_reward_accuracy")):
        if policy.get(name) is not None:
            return f"{label} {format_number(policy[name])}"
    return ""


def format_size(size_bytes: int) -> str:
    """In decimal units, as `du --si` writes them: 950 B, 2.5 MB, 12 MB."""
    size, unit = float(size_bytes), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"{size:.0f} {unit}" if unit == "B" or size >= 10 else f"{size:.1f} {unit}"


def directory_size(path: Path) -> int:
    """Bytes of the files under `path`, each file (inode) once."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _status(path: Path) -> str:
    if (path / "summary.json").is_file():
        return SUCCEEDED
    if (path / "stages.json").is_file():
        return FAILED
    request = _read_json(path / "logs" / REQUEST_FILE) or {}
    pid = request.get("pid") if isinstance(request, dict) else None
    return RUNNING if isinstance(pid, int) and _process_alive(pid) else UNFINISHED


def run_info(path: Path) -> RunInfo:
    summary = _read_json(path / "summary.json") or {}
    stages = _read_json(path / "stages.json") or []
    origins = tuple(sorted({stage["origin"] for stage in stages if isinstance(stage, dict) and stage.get("origin")}))
    return RunInfo(path.name, path, _status(path), summary.get("algorithm", ""), headline(summary),
                   directory_size(path), origins)


def list_runs(output_dir: Path) -> list[RunInfo]:
    """Every run directory under `output_dir`, oldest first (their names sort by start time)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    paths = [p for p in output_dir.iterdir() if p.is_dir() and RUN_NAME.fullmatch(p.name)]
    return [run_info(path) for path in sorted(paths, key=lambda p: _start_order(p.name))]


STAMP_CHARS = len("run-YYYYmmdd-HHMMSS")


def _start_order(name: str) -> tuple[str, int]:
    """`run-YYYYmmdd-HHMMSS[-N]` in the order the runs started (run-...-10 after run-...-9)."""
    return name[:STAMP_CHARS], int(name[STAMP_CHARS + 1:] or 1)


def runs_table(runs: list[RunInfo]) -> str:
    header = ("run", "status", "algorithm", "headline", "size", "cached from")
    rows = [header] + [(r.name, r.status, r.algorithm or "-", r.headline or "-", format_size(r.size_bytes),
                        ", ".join(r.cached_from) or "-") for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows)


def cache_entries_of(output_dir: Path, run_dir: Path) -> list[Path]:
    """The cache entries whose outputs lie in `run_dir`."""
    marker = f"{Path(run_dir).resolve()}/"
    entries = []
    for entry in sorted((Path(output_dir) / CACHE_DIR).glob("*.json")):
        try:
            if marker in entry.read_text(encoding="utf-8"):
                entries.append(entry)
        except OSError:
            continue
    return entries


def runs_to_remove(runs: list[RunInfo], names: list[str], keep_newest: int | None) -> list[RunInfo]:
    """The runs named, or all but the `keep_newest` newest; refuses unknown names and running runs."""
    by_name = {run.name: run for run in runs}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UserInputError(f"no run directory {', '.join(unknown)} here; `rlhf-pipeline runs` lists them")
    chosen = [by_name[name] for name in names]
    if keep_newest is not None:
        if keep_newest < 1:
            raise UserInputError(f"--keep-newest must be at least 1, got {keep_newest}")
        chosen += [run for run in runs[:-keep_newest] if run not in chosen]
    running = [run.name for run in chosen if run.status == RUNNING]
    if running:
        raise UserInputError(f"{', '.join(running)} is still running; stop it first")
    return chosen


def remove_run(output_dir: Path, run: RunInfo) -> int:
    """Delete the run directory and its cache entries; how many cache entries went."""
    entries = cache_entries_of(output_dir, run.path)
    for entry in entries:
        entry.unlink(missing_ok=True)
    shutil.rmtree(run.path)
    return len(entries)
