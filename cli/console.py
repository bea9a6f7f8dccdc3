"""What `rlhf-pipeline run` prints: one line per stage as it starts and ends, live progress, results.

Three consoles take the events of cli/kfp_stream.py:

- `LiveConsole` (a terminal): the stage lines, and below them one line redrawn in place with the
  running stage's progress (steps done, rate, ETA, its key figures, time so far).
- `PlainConsole` (a pipe, a file, CI): the stage lines, and a plain progress line per running stage
  at most every `PLAIN_PROGRESS_SECONDS` (and, in a long stage, every tenth of its time so far), so
  a log stays short and still shows that work goes on.
- `VerboseConsole` (`--verbose`): kfp's whole stream, as it comes.
- `PlanConsole` (`--dry-run`): one line per stage, whether it would run or come from the cache.

Everything else goes to the run's `logs/` directory, which each stage's first line names.
"""

import sys
import time
from typing import Callable, TextIO

from cli.kfp_stream import CACHED, FAILED, Stage

PLAIN_PROGRESS_SECONDS = 30.0


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _prefix(stage: Stage, clock: str | None = None) -> str:
    when = (clock if clock is not None else (stage.ended or stage.started)).split(".")[0]
    return f"{when} [{stage.index}/{stage.total}] {stage.title}"


def started_line(stage: Stage, logs_label: str = "logs") -> str:
    return f"{_prefix(stage, stage.started)}: started (log: {logs_label}/{stage.log_path.name})"


def finished_line(stage: Stage) -> str:
    if stage.status == CACHED:
        origin = f" (outputs of {stage.origin})" if stage.origin else ""
        return f"{_prefix(stage)}: cached{origin}"
    if stage.status == FAILED:
        return f"{_prefix(stage)}: FAILED after {format_seconds(stage.seconds)}"
    result = stage.result_text()
    done = f"{_prefix(stage)}: done in {format_seconds(stage.seconds)}" + (f"; {result}" if result else "")
    return "\n".join([done] + [f"{_prefix(stage)}: warning: {warning}" for warning in stage.warnings])


def progress_line(stage: Stage) -> str:
    return f"{time.strftime('%H:%M:%S')} [{stage.index}/{stage.total}] {stage.title}: {stage.progress_text()}"


class PlainConsole:
    """Stage lines and occasional plain progress lines: for pipes, files and CI logs."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float = PLAIN_PROGRESS_SECONDS):
        self.out = out or sys.stdout
        self.clock = clock
        self.interval = interval
        self._last_line: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def stage_started(self, stage: Stage) -> None:
        self._started[stage.task] = self._last_line[stage.task] = self.clock()
        self.print(started_line(stage))

    def stage_progress(self, stage: Stage) -> None:
        """A line at most every `interval` seconds, and at most every tenth of the time the stage has
        run so far: a long stage's log grows with the logarithm of its duration, not linearly."""
        now = self.clock()
        since_last = now - self._last_line.get(stage.task, now)
        running = now - self._started.get(stage.task, now)
        if stage.latest is not None and since_last >= max(self.interval, running / 10):
            self._last_line[stage.task] = now
            self.print(progress_line(stage))

    def stage_finished(self, stage: Stage) -> None:
        self.print(finished_line(stage))

    def raw_line(self, line: str) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def planned_line(stage: Stage) -> str:
    """`run --dry-run`'s line: what a run would do with the stage."""
    if stage.status != CACHED:
        return f"[{stage.index}/{stage.total}] {stage.title}: would run"
    return f"[{stage.index}/{stage.total}] {stage.title}: cached" + (f" (outputs of {stage.origin})" if stage.origin else "")


class PlanConsole(PlainConsole):
    """`run --dry-run`: one line per stage, once kfp.local has passed it."""

    def stage_started(self, stage: Stage) -> None:
        pass

    def stage_progress(self, stage: Stage) -> None:
        pass

    def stage_finished(self, stage: Stage) -> None:
        self.print(planned_line(stage))


class VerboseConsole(PlainConsole):
    """kfp's own stream, every line of it (`--verbose`)."""

    def stage_started(self, stage: Stage) -> None:
        pass

    def stage_progress(self, stage: Stage) -> None:
        pass

    def stage_finished(self, stage: Stage) -> None:
        pass

    def raw_line(self, line: str) -> None:
        self.print(line)


class LiveConsole(PlainConsole):
    """Stage lines above one progress line redrawn in place (rich): for a terminal."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.live import Live
        from rich.spinner import Spinner

        super().__init__()
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.spinner = Spinner("dots", text="")
        self.running: Stage | None = None
        self.since = 0.0
        self.live = Live(self, console=self.console, transient=True, refresh_per_second=4,
                         redirect_stdout=False, redirect_stderr=False)

    def __rich__(self):
        from rich.text import Text

        if self.running is None:
            return Text("")
        stage = self.running
        progress = stage.progress_text() or "starting"
        elapsed = format_seconds(time.monotonic() - self.since)
        text = Text(f"[{stage.index}/{stage.total}] {stage.title} ({elapsed}): {progress}",
                    no_wrap=True, overflow="ellipsis")
        self.spinner.update(text=text)
        return self.spinner

    def print(self, text: str = "") -> None:
        self.console.print(text, markup=False, highlight=False)

    def stage_started(self, stage: Stage) -> None:
        self.running, self.since = stage, time.monotonic()
        self.print(started_line(stage))

    def stage_progress(self, stage: Stage) -> None:
        pass  # the live line reads the stage at each refresh

    def stage_finished(self, stage: Stage) -> None:
        if self.running is stage:
            self.running = None
        self.print(finished_line(stage))

    def __enter__(self):
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = None
        self.live.stop()


def make_console(verbose: bool, out: TextIO | None = None):
    """The console for this output: verbose, live on a terminal, plain otherwise."""
    out = out or sys.stdout
    if verbose:
        return VerboseConsole(out)
    if out.isatty():
        from rich.console import Console

        console = Console(file=out, highlight=False, soft_wrap=True)
        if console.is_terminal and not console.is_dumb_terminal:  # TERM=dumb cannot redraw a line
            return LiveConsole(console)
    return PlainConsole(out)
