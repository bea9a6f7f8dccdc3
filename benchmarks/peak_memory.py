"""Peak resident memory that a stretch of work adds to this process (Linux).

The kernel keeps a high-water mark of the resident set (VmHWM); writing 5 to /proc/self/clear_refs
resets it to the current resident size, so the peak of each measured stretch is read on its own.

glibc's malloc keeps freed memory for reuse, and raises its mmap threshold as large blocks are freed,
so after one engine's step the process stays as large as that step's peak and the next stretch's
growth reads too small. `PeakMemory` therefore fixes the threshold (mallopt M_MMAP_THRESHOLD, which
also stops its dynamic adjustment): every block above 128 KiB (every tensor that matters) is its own
mapping, returned to the kernel when freed, and the resident size follows the live tensors.
"""

import ctypes
import ctypes.util
from pathlib import Path

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_freed_memory() -> None:
    """Make glibc return every large freed block to the kernel at once (no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "mallopt"):
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def resident_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """`start()`, do the work, then `added()`: the peak resident bytes above the resident size at start."""

    def __init__(self) -> None:
        return_freed_memory()

    def start(self) -> None:
        self.baseline = resident_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")

    def added(self) -> int:
        return resident_bytes("VmHWM") - self.baseline
