"""How many CPU threads a stage's torch work uses: the cores the stage is given, not the machine's.

torch starts one intra-op thread per core it sees on the machine. A stage in a container with a CPU
limit (Kubeflow pods, `cpu_limit` in KFP) or pinned to some cores sees more cores than it may use,
and its threads then fight each other for the quota: on a real model that makes generation several
times slower. So each stage sets torch's thread count to the smaller of torch's default and the cores
it is given (its CPU affinity, capped by a cgroup CPU quota). `OMP_NUM_THREADS`, where set, is the
user's choice and wins: `OMP_NUM_THREADS=1 rlhf-pipeline run` keeps every stage on one thread, as
is best when other work shares the machine.
"""

import math
import os
from pathlib import Path

import torch

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 `cpu.max`, or v1's CFS quota and
    period), or None where there is none."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cores_given(root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on: its CPU affinity, capped by its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return cores


def use_the_cores_given(root: Path = CGROUP_ROOT) -> str:
    """Set torch's intra-op thread count for this stage; returns a line saying what and why."""
    if os.environ.get("OMP_NUM_THREADS"):
        return f"torch threads: {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
    given = cores_given(root)
    if given < torch.get_num_threads():
        torch.set_num_threads(given)
    return f"torch threads: {torch.get_num_threads()} (cores given to this stage: {given})"
