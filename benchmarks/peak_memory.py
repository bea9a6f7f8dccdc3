"""Peak resident memory that a stretch of work adds to this process (Linux).

The kernel keeps a high-water mark of the resident set (VmHWM); writing 5 to /proc/self/clear_refs
resets it to the current resident size, so the peak of each measured stretch is read on its own.
"""

from pathlib import Path


def resident_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """`start()`, do the work, then `added()`: the peak resident bytes above the resident size at start."""

    def start(self) -> None:
        self.baseline = resident_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")

    def added(self) -> int:
        return resident_bytes("VmHWM") - self.baseline
