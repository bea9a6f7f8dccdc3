"""Following a submitted job to its end: poll its state and show the progress of its tasks."""

import time
from dataclasses import dataclass, field
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

DEFAULT_POLL_SECONDS = 30.0


def plain_console() -> Console:
    """A console that never wraps lines: resource names and links stay whole for copying."""
    return Console(soft_wrap=True, highlight=False)


@dataclass(frozen=True)
class JobStatus:
    state: str  # the platform's own state name, e.g. PIPELINE_STATE_RUNNING or RUNNING
    done: bool
    succeeded: bool
    tasks_finished: int = 0
    error: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # what a person reads after a run


def follow(poll: Callable[[], JobStatus], total_tasks: int, poll_seconds: float = DEFAULT_POLL_SECONDS,
           console: Console | None = None) -> JobStatus:
    """Poll until the job is done. Each change of state or of finished tasks prints one line (so logs
    show the run's course); on a terminal a progress bar of finished tasks runs meanwhile."""
    console = console or plain_console()
    last = None
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("tasks"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("submitted", total=total_tasks or None)
        while True:
            status = poll()
            if (status.state, status.tasks_finished) != last:
                last = (status.state, status.tasks_finished)
                progress.console.print(f"{time.strftime('%H:%M:%S')} {status.state}: "
                                       f"{status.tasks_finished}/{total_tasks} tasks finished")
            progress.update(bar, description=status.state, completed=status.tasks_finished)
            if status.done:
                return status
            time.sleep(poll_seconds)


def report_end(status: JobStatus, console: Console | None = None) -> int:
    """Print how the job ended and what to read; 0 when it succeeded, 1 otherwise."""
    console = console or plain_console()
    if not status.succeeded:
        console.print(f"the job ended in {status.state}" + (f": {status.error}" if status.error else ""))
        return 1
    console.print(f"the job succeeded ({status.state})")
    for name, value in status.outputs.items():
        console.print(f"  {name}: {value}")
    return 0
