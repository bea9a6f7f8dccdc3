"""A stage's torch threads follow the cores it is given (components/common/threads.py)."""

import torch

from components.common import threads
from components.common.threads import cgroup_cpu_limit, cores_given, use_the_cores_given


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_and_v1_quotas_are_read_in_cores(tmp_path):
    write(tmp_path / "v2" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(tmp_path / "v2") == 1.5
    write(tmp_path / "v2max" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path / "v2max") is None
    write(tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us", "300000\n")
    write(tmp_path / "v1" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "v1") == 3.0
    write(tmp_path / "v1free" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "v1free" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path / "v1free") is None
    assert cgroup_cpu_limit(tmp_path / "none") is None


def test_cores_given_are_the_affinity_capped_by_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert cores_given(tmp_path / "none") == 8
    write(tmp_path / "cpu.max", "250000 100000\n")
    assert cores_given(tmp_path) == 2  # 2.5 cores: two whole ones, no throttling
    write(tmp_path / "cpu.max", "50000 100000\n")
    assert cores_given(tmp_path) == 1


def test_torch_threads_follow_the_quota_unless_omp_num_threads_is_set(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        write(tmp_path / "cpu.max", "100000 100000\n")
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert "OMP_NUM_THREADS=2" in use_the_cores_given(tmp_path)
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert use_the_cores_given(tmp_path) == "torch threads: 1 (cores given to this stage: 1)"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
