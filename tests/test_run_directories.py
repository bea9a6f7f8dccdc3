"""Run directories: each one whole by itself (cached outputs included), listed by `rlhf-pipeline runs`,
and old ones removed with their cache entries without breaking newer ones."""

import json
import os
import re
import shutil
import subprocess
import sys

from conftest import REPO_ROOT
from cli.local_run import CACHE_DIR, finalize
from cli.run_directories import list_runs

SUMMARY = {"algorithm": "ppo", "reward_model": {"eval_accuracy": 0.9},
           "policy": {"base_gold_score": 0.4024, "tuned_gold_score": 0.5689, "win_rate": 0.79}}


def fake_run(output_dir, name, origin=None):
    """A run directory as `run` leaves it, whose stages wrote their artifacts there, or (with
    `origin`) came from the cache: then its summary artifact names `origin`'s outputs."""
    run_dir = output_dir / name
    source = output_dir / (origin or name) / "artifacts" / "p"
    if origin is None:
        (source / "tune-policy" / "policy").mkdir(parents=True)
        (source / "tune-policy" / "policy" / "config.json").write_text('{"model_type": "llama"}')
        (source / "train-reward-model" / "reward_model").mkdir(parents=True)
        (source / "train-reward-model" / "reward_model" / "model.safetensors").write_bytes(b"w" * 5000)
        evaluate = source / "evaluate"
        (evaluate / "predictions" / "curves").mkdir(parents=True)
        (evaluate / "predictions" / "curves" / "policy_reward.png").write_bytes(b"png")
        (evaluate / "report").write_text("<html></html>")
        (evaluate / "report_markdown").write_text("| policy | reward | [policy\\_reward](predictions/curves/policy_reward.png) |\n")
        (source / "summarize-run").mkdir()
        (output_dir / CACHE_DIR).mkdir(exist_ok=True)
        (output_dir / CACHE_DIR / f"{name}-policy.json").write_text(json.dumps({"uri": str(source / "tune-policy" / "policy")}))
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    artifact = run_dir / "summary-artifact.json"
    artifact.write_text(json.dumps({**SUMMARY, "paths": {
        "policy": str(source / "tune-policy" / "policy"), "reward_model": str(source / "train-reward-model" / "reward_model"),
        "report_html": str(source / "evaluate" / "report")}}))
    stages = [{"task": "tune-policy", "status": "cached" if origin else "succeeded", "origin": origin}]
    return finalize(run_dir, artifact, stages)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=REPO_ROOT)


def test_a_cached_run_stays_whole_when_the_run_it_reused_is_deleted(tmp_path):
    fake_run(tmp_path, "run-20261201-100000")
    newer = fake_run(tmp_path, "run-20261201-110000", origin="run-20261201-100000")
    shutil.rmtree(tmp_path / "run-20261201-100000")

    summary = json.loads(newer.summary_path.read_text())
    assert summary["paths"] == {name: str(newer.run_dir / file) for name, file in (
        ("policy", "policy"), ("reward_model", "reward_model"), ("report_html", "report.html"),
        ("report_markdown", "report.md"), ("predictions", "predictions"))}
    assert json.loads((newer.run_dir / "policy" / "config.json").read_text()) == {"model_type": "llama"}
    assert (newer.run_dir / "reward_model" / "model.safetensors").read_bytes() == b"w" * 5000
    links = re.findall(r"\]\(([^)]+)\)", (newer.run_dir / "report.md").read_text())
    assert links and all((newer.run_dir / link).is_file() for link in links)


def test_runs_lists_status_algorithm_headline_size_and_origin(tmp_path):
    fake_run(tmp_path, "run-20261201-100000")
    fake_run(tmp_path, "run-20261201-100000-10", origin="run-20261201-100000")
    fake_run(tmp_path, "run-20261201-100000-9", origin="run-20261201-100000")
    (tmp_path / "run-20261201-120000" / "logs").mkdir(parents=True)  # stopped before its end
    (tmp_path / "run-20261201-120000" / "logs" / "request.json").write_text(json.dumps({"pid": os.getpid()}))
    (tmp_path / "not-a-run").mkdir()

    runs = list_runs(tmp_path)
    assert [(r.name, r.status, r.cached_from) for r in runs] == [
        ("run-20261201-100000", "succeeded", ()),
        ("run-20261201-100000-9", "succeeded", ("run-20261201-100000",)),
        ("run-20261201-100000-10", "succeeded", ("run-20261201-100000",)),
        ("run-20261201-120000", "running", ()),  # its `run` process (here: this one) is alive
    ]
    assert runs[0].headline == "gold score 0.4024 -> 0.5689" and runs[0].algorithm == "ppo"
    # the policy's, reward model's and PNG's bytes once, though the run dir also holds hard links to them
    files = [p for p in runs[0].path.rglob("*") if p.is_file()]
    unique = {(p.stat().st_dev, p.stat().st_ino): p.stat().st_size for p in files}
    assert runs[0].size_bytes == sum(unique.values()) < sum(p.stat().st_size for p in files)

    listing = run_cli("runs", "--output-dir", str(tmp_path))
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "algorithm", "headline", "size", "cached", "from"]
    assert lines[2].split()[:4] == ["run-20261201-100000-9", "succeeded", "ppo", "gold"]
    assert lines[2].endswith("  run-20261201-100000")


def test_removing_old_runs_takes_their_cache_entries_and_leaves_the_newest_whole(tmp_path):
    fake_run(tmp_path, "run-20261201-100000")
    fake_run(tmp_path, "run-20261201-110000")
    fake_run(tmp_path, "run-20261201-120000", origin="run-20261201-110000")

    refused = run_cli("runs", "--output-dir", str(tmp_path), "--remove", "run-20261201-130000")
    assert refused.returncode == 2 and refused.stderr == (
        "error: no run directory run-20261201-130000 here; `rlhf-pipeline runs` lists them\n")

    result = run_cli("runs", "--output-dir", str(tmp_path), "--keep-newest", "1")
    assert result.returncode == 0, result.stderr
    removed = [line.split()[1] for line in result.stdout.splitlines()]
    assert removed == ["run-20261201-100000", "run-20261201-110000"]
    assert result.stdout.splitlines()[0].endswith(" and 1 cache entries")
    assert [r.name for r in list_runs(tmp_path)] == ["run-20261201-120000"]
    assert list((tmp_path / CACHE_DIR).iterdir()) == []
    newest = tmp_path / "run-20261201-120000"
    for path in json.loads((newest / "summary.json").read_text())["paths"].values():
        assert os.path.exists(path), path


def test_a_running_run_is_not_removed(tmp_path):
    (tmp_path / "run-20261201-120000" / "logs").mkdir(parents=True)
    (tmp_path / "run-20261201-120000" / "logs" / "request.json").write_text(json.dumps({"pid": os.getpid()}))
    result = run_cli("runs", "--output-dir", str(tmp_path), "--remove", "run-20261201-120000")
    assert result.returncode == 2 and result.stderr == "error: run-20261201-120000 is still running; stop it first\n"
    assert (tmp_path / "run-20261201-120000").is_dir()


def test_sizes_read_as_du_si_writes_them():
    from cli.run_directories import format_size

    assert [format_size(n) for n in (950, 2_500, 12_345_678, 2_500_000_000)] == ["950 B", "2.5 KB", "12 MB", "2.5 GB"]
