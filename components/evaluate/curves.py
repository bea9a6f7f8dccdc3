"""Training curves: scalars read from TensorBoard event logs and drawn as PNG plots."""

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

EVENT_FILE_MARKER = "tfevents"
SMOOTHING_WEIGHT = 0.8  # exponential moving average drawn over noisy curves (TensorBoard-style)
SMOOTHING_MIN_POINTS = 20  # shorter curves are drawn raw only
FIGURE_SIZE_INCHES = (6.0, 3.2)
FIGURE_DPI = 100


@dataclass(frozen=True)
class Curve:
    """One scalar tag of one training stage, ordered by step."""

    stage: str  # e.g. "reward model", "policy"
    tag: str
    steps: list[int]
    values: list[float]

    @property
    def title(self) -> str:
        return f"{self.stage}: {self.tag}"

    @property
    def file_stem(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "_", self.title).strip("_").lower()


def read_curves(logs_dir: str | Path | None, stage: str) -> list[Curve]:
    """Every scalar tag in the event files under `logs_dir` (recursively); [] when there are none.

    Tags of event files in a subdirectory are prefixed with its relative path, so runs do not mix.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    if not logs_dir or not Path(logs_dir).is_dir():
        return []
    root = Path(logs_dir)
    run_dirs = sorted({p.parent for p in root.rglob(f"*{EVENT_FILE_MARKER}*") if p.is_file()})
    curves = []
    for run_dir in run_dirs:
        accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})  # 0 = keep every point
        accumulator.Reload()
        prefix = "" if run_dir == root else f"{run_dir.relative_to(root).as_posix()}/"
        for tag in sorted(accumulator.Tags()[SCALARS]):
            events = sorted(accumulator.Scalars(tag), key=lambda e: (e.step, e.wall_time))
            steps = [int(e.step) for e in events]
            values = [float(e.value) for e in events]
            curves.append(Curve(stage, prefix + tag, steps, values))
    return curves


def smoothed(values: list[float], weight: float = SMOOTHING_WEIGHT) -> list[float]:
    """Debiased exponential moving average; non-finite points are passed over."""
    result, average, total_weight = [], 0.0, 0.0
    for value in values:
        if math.isfinite(value):
            average = weight * average + (1 - weight) * value
            total_weight = weight * total_weight + (1 - weight)
        result.append(average / total_weight if total_weight else math.nan)
    return result


def render_curve_png(curve: Curve) -> bytes:
    """A line plot of the curve as PNG bytes (drawn off-screen, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_INCHES, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if len(curve.values) >= SMOOTHING_MIN_POINTS:
        axes.plot(curve.steps, curve.values, color="tab:blue", alpha=0.3, linewidth=1, label="raw")
        axes.plot(curve.steps, smoothed(curve.values), color="tab:blue", linewidth=1.8, label="smoothed")
        axes.legend(loc="best", fontsize="small")
    else:
        axes.plot(curve.steps, curve.values, color="tab:blue", marker="o", markersize=3, linewidth=1.5)
    axes.set_title(curve.title, fontsize="medium")
    axes.set_xlabel("step")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
