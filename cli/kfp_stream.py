"""Reading kfp.local's output: stages, their logs, their progress and why one failed.

`rlhf-pipeline run` starts kfp.local in a child process (cli/local_child.py) and reads its merged
stdout/stderr line by line. kfp.local 2.17 marks each task with lines of its own logger:

    03:12:26.353 - INFO - Executing task 'resolve-base-model'
    03:12:51.481 - INFO - Task 'resolve-base-model' finished with status SUCCESS
    03:12:51.482 - INFO - Task 'resolve-base-model' outputs:
    --------------------------------------------------------------------------------
    03:14:30.120 - INFO - Task train-reward-model cache hit (key=0123456789ab); skipping execution.
    03:14:25.885 - INFO - Pipeline 'rlhf-pipeline' finished with status SUCCESS

(names and statuses coloured with ANSI codes; the cache-hit line shows only because the child gives
the root logger a handler). Between "Executing" and the rule after "finished", everything is that
task's: kfp's executor input, the component's own output indented by four spaces, and its outputs.
`StreamSplitter` writes the whole stream to `logs/pipeline.log` and each task's part to
`logs/<task>.log`, and tells a listener (cli/console.py) when a stage starts, progresses, ends
or comes from the cache. tqdm bars arrive one update per line (kfp reads the component's output in
text mode, which turns every carriage return into a new line); `parse_progress` reads them.
"""

import ast
import collections
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Protocol

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KFP_LOG = re.compile(r"^(?P<clock>\d{2}:\d{2}:\d{2}(?:\.\d+)?) - (?P<level>[A-Z]+) - (?P<message>.*)$")
EXECUTING = re.compile(r"^Executing task '(?P<task>[^']+)'")
FINISHED = re.compile(r"^Task '(?P<task>[^']+)' finished with status (?P<status>[A-Z]+)")
CACHE_HIT = re.compile(r"^Task '?(?P<task>[^' ]+)'? cache hit \(key=(?P<key>[0-9a-f]+)\)")
PIPELINE_FINISHED = re.compile(r"^Pipeline '(?P<pipeline>[^']+)' finished with status (?P<status>[A-Z]+)")
RULE = re.compile(r"^-{20,}$")
COMPONENT_INDENT = "    "

# A tqdm line: "desc:  63%|######   | 54/86 [00:17<00:10,  2.94it/s, kl=0.1, reward=0.2]".
TQDM = re.compile(
    r"^(?:(?P<desc>.*?):\s*)?(?P<percent>\d{1,3})%\|[^|]*\|\s*(?P<n>[\d.]+[kMGT]?)/(?P<total>[\d.]+[kMGT]?)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:?]+),\s*(?P<rate>[^,\]]*?)\s*(?:,\s*(?P<postfix>[^\]]*))?\]\s*$"
)
# What a Hugging Face Trainer logs each `logging_steps`: "{'loss': '0.2545', ..., 'accuracy': '0.9187'}".
TRAINER_LOG = re.compile(r"^\{'[^']+': .*\}$")
KEY_METRICS = ("loss", "accuracy", "eval_loss", "eval_accuracy")
TRAINER_SUMMARY = "train_runtime"
TRACEBACK = "Traceback (most recent call last):"
EXCEPTION_LINE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)?)"
                            r"(?::\s(?P<message>.*))?$")
USER_INPUT_ERROR = "UserInputError"
FAILURE_TAIL_LINES = 2000  # lines of each stage kept in memory to find why it failed

RUNNING, SUCCEEDED, FAILED, CACHED = "running", "succeeded", "failed", "cached"
# A stage prints "warning: ..." for what a person must see though the stage succeeded (a run that learned
# nothing, an unbalanced KTO set); the console shows each under the stage's line.
WARNING_PREFIX = "warning: "


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def clock_seconds(clock: str) -> float:
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def elapsed_between(start: str, end: str) -> float:
    """Seconds from one HH:MM:SS[.mmm] clock to a later one (past midnight too)."""
    return round((clock_seconds(end) - clock_seconds(start)) % 86400, 3)


def _scaled(text: str) -> float:
    factor = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}.get(text[-1:], 1.0)
    return float(text[:-1] if factor != 1.0 else text) * factor


def _duration_seconds(text: str) -> int:
    seconds = 0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


@dataclass(frozen=True)
class Progress:
    """One tqdm update."""

    desc: str
    n: float
    total: float
    percent: int
    elapsed_s: int
    remaining: str  # tqdm's own estimate, "00:10" or "?"
    rate: str  # "2.94it/s", "1.06s/step"
    postfix: str  # "kl=0.1, reward=0.2" (the component's key figures) or ""

    def describe(self, metrics: dict[str, str] | None = None) -> str:
        """`PPO 31/32 steps (97%), 1.05step/s, ETA 00:01, kl=4.547, reward=0.854`."""
        count = f"{self.n:g}/{self.total:g}"
        parts = [f"{self.desc or 'steps'} {count} ({self.percent}%)"]
        if self.rate and not self.rate.startswith("?"):
            parts.append(self.rate)
        if self.n < self.total and self.remaining and "?" not in self.remaining:
            parts.append(f"ETA {self.remaining}")
        figures = self.postfix.strip()
        if metrics:
            extra = ", ".join(f"{k}={v}" for k, v in metrics.items() if f"{k}=" not in figures)
            figures = ", ".join(part for part in (figures, extra) if part)
        if figures:
            parts.append(figures)
        return ", ".join(parts)


def parse_progress(text: str) -> Progress | None:
    """The tqdm update on this line, or None."""
    match = TQDM.match(text.strip())
    if not match:
        return None
    try:
        n, total = _scaled(match["n"]), _scaled(match["total"])
        elapsed = _duration_seconds(match["elapsed"])
    except ValueError:
        return None
    return Progress((match["desc"] or "").strip(), n, total, int(match["percent"]), elapsed,
                    match["remaining"], match["rate"].strip(), (match["postfix"] or "").strip())


def parse_trainer_metrics(text: str) -> dict[str, str] | None:
    """The key figures of a Hugging Face Trainer log line (`{'loss': '0.25', ...}`), or None."""
    text = text.strip()
    if not TRAINER_LOG.match(text):
        return None
    try:
        logged = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(logged, dict) or TRAINER_SUMMARY in logged:
        return None  # the end-of-training summary averages over the run: the last step's figures stay
    return {key: str(logged[key]) for key in KEY_METRICS if key in logged}


def failure_reason(lines: list[str]) -> str:
    """Why a stage failed, in one line, from its log (component output, dedented).

    The project's own message when the stage raised UserInputError; for any other error the last
    exception line of the last traceback ("ValueError: ..."); without a traceback, the last line
    that says anything.
    """
    start = max((i for i, line in enumerate(lines) if line.strip() == TRACEBACK), default=None)
    if start is not None:
        exception = None
        for line in lines[start + 1:]:
            if not line.strip():
                if exception:
                    break
                continue
            if line[0].isspace():  # a frame, its source line or a caret line
                if exception:
                    break
                continue
            if line.startswith(("[KFP Executor", "During handling", "The above exception")):
                break
            if exception is None:
                exception = line.strip()
        if exception:
            match = EXCEPTION_LINE.match(exception)
            if match and match["name"].rsplit(".", 1)[-1] == USER_INPUT_ERROR and match["message"]:
                return match["message"]
            if match and match["message"] is not None:
                return f"{match['name'].rsplit('.', 1)[-1]}: {match['message']}"
            return exception
    said = [line.strip() for line in lines if line.strip() and not RULE.match(line.strip())
            and not KFP_LOG.match(line.strip())]
    return said[-1] if said else "the step ended without a message"


@dataclass
class Stage:
    """One task of the run, as its output tells it."""

    task: str
    title: str
    index: int
    total: int
    log_path: Path
    status: str = RUNNING
    started: str = ""  # HH:MM:SS.mmm from kfp's log
    ended: str = ""
    seconds: float | None = None
    cache_key: str = ""
    origin: str = ""  # for a cached stage: the run whose outputs it reuses
    warnings: list[str] = field(default_factory=list)  # the stage's own "warning: ..." lines
    bars: dict[str, Progress] = field(default_factory=dict)
    latest: Progress | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=FAILURE_TAIL_LINES))
    reason: str = ""

    @property
    def main_bar(self) -> Progress | None:
        """The bar that ran longest: the stage's real work (training steps, not loading weights)."""
        if not self.bars:
            return None
        return max(reversed(list(self.bars.values())), key=lambda bar: bar.elapsed_s)

    def progress_text(self) -> str:
        bar = self.latest
        if bar is None:
            return ""
        return bar.describe(self.metrics if bar is self.main_bar else None)

    def result_text(self) -> str:
        """The main bar at its end: what the stage did, at what rate, with its last figures."""
        bar = self.main_bar
        if bar is None or bar.elapsed_s < 1:
            return ""
        return bar.describe(self.metrics)

    def record(self) -> dict:
        return {"task": self.task, "title": self.title, "status": self.status, "seconds": self.seconds,
                "origin": self.origin or None, "started": self.started, "ended": self.ended, "log": str(self.log_path),
                "result": self.result_text() or None, "reason": self.reason or None}


class StageListener(Protocol):
    def stage_started(self, stage: Stage) -> None: ...
    def stage_progress(self, stage: Stage) -> None: ...
    def stage_finished(self, stage: Stage) -> None: ...
    def raw_line(self, line: str) -> None: ...


class StreamSplitter:
    """Feeds on kfp.local's output, line by line; writes the logs and tells `listener` what happens."""

    def __init__(self, logs_dir: Path, titles: dict[str, str], listener: StageListener,
                 origin_of: Callable[[str], str] | None = None, steps: int | None = None):
        """`titles`: task -> title for every step the DAG has; `steps`: how many of them one run
        executes (all of them unless the DAG branches)."""
        self.logs_dir = Path(logs_dir)
        self.origin_of = origin_of  # cache key prefix -> the run that wrote the cached outputs
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.titles = titles
        self.steps = len(titles) if steps is None else steps
        self.listener = listener
        self.stages: dict[str, Stage] = {}
        self.pipeline_status = ""
        self._full = open(self.logs_dir / "pipeline.log", "a", encoding="utf-8")
        self._current: Stage | None = None  # the task whose lines are arriving
        self._current_log: IO[str] | None = None
        self._pending: list[str] = []  # kfp's lines before a task starts (its warnings about it)
        self.tail: collections.deque = collections.deque(maxlen=FAILURE_TAIL_LINES)

    # -- stages ---------------------------------------------------------------------------------

    def _stage(self, task: str) -> Stage:
        if task not in self.stages:
            self.stages[task] = Stage(task, self.titles.get(task, task), len(self.stages) + 1,
                                      max(self.steps, len(self.stages) + 1),
                                      self.logs_dir / f"{task}.log")
        return self.stages[task]

    def _open(self, stage: Stage) -> None:
        self._close()
        self._current = stage
        self._current_log = open(stage.log_path, "a", encoding="utf-8")
        for line in self._pending:
            self._current_log.write(line + "\n")
        self._pending = []

    def _close(self) -> None:
        if self._current_log is not None:
            self._current_log.close()
        self._current, self._current_log = None, None

    def _write_stage(self, line: str) -> None:
        if self._current_log is not None:
            self._current_log.write(line + "\n")
            self._current_log.flush()

    # -- input ----------------------------------------------------------------------------------

    def feed(self, raw: str) -> None:
        raw = raw.rstrip("\r\n")
        self._full.write(raw + "\n")
        self._full.flush()
        self.listener.raw_line(raw)
        line = strip_ansi(raw)
        self.tail.append(line)
        logged = KFP_LOG.match(line)
        if logged:
            self._kfp_line(logged["clock"], logged["message"].strip(), line)
            return
        if self._current is None:
            if RULE.match(line.strip()):
                self._pending = []  # the end of kfp's preamble or of a task: what follows is new
            else:
                self._pending.append(line)  # e.g. kfp's warning about the next task
                del self._pending[:-200]
            return
        self._write_stage(line)
        if RULE.match(line.strip()) and self._current.status != RUNNING:
            self._close()
            return
        own = line[len(COMPONENT_INDENT):] if line.startswith(COMPONENT_INDENT) else line
        self._current.tail.append(own)
        if self._current.status != RUNNING:
            return
        if own.startswith(WARNING_PREFIX):
            self._current.warnings.append(own[len(WARNING_PREFIX):].strip())
            return
        progress = parse_progress(own)
        if progress is not None:
            self._current.bars[progress.desc] = progress
            self._current.latest = progress
            self.listener.stage_progress(self._current)
            return
        metrics = parse_trainer_metrics(own)
        if metrics:
            self._current.metrics.update(metrics)
            self.listener.stage_progress(self._current)

    def _kfp_line(self, clock: str, message: str, line: str) -> None:
        if started := EXECUTING.match(message):
            stage = self._stage(started["task"])
            stage.status, stage.started, stage.bars, stage.latest = RUNNING, clock, {}, None
            self._open(stage)
            self._write_stage(line)
            self.listener.stage_started(stage)
        elif finished := FINISHED.match(message):
            stage = self._stage(finished["task"])
            if self._current is not stage:
                self._open(stage)
            self._write_stage(line)
            stage.ended = clock
            stage.seconds = elapsed_between(stage.started or clock, clock)
            stage.status = SUCCEEDED if finished["status"] == "SUCCESS" else FAILED
            if stage.status == FAILED:
                stage.reason = failure_reason(list(stage.tail))
            self.listener.stage_finished(stage)
        elif hit := CACHE_HIT.match(message):
            self._close()
            stage = self._stage(hit["task"])
            stage.status, stage.started, stage.ended, stage.seconds = CACHED, clock, clock, 0
            stage.cache_key = hit["key"]
            stage.origin = self.origin_of(hit["key"]) if self.origin_of else ""
            self._open(stage)
            self._write_stage(line)
            self._close()
            self.listener.stage_finished(stage)
        elif done := PIPELINE_FINISHED.match(message):
            self._close()
            self.pipeline_status = done["status"]
        elif self._current is not None:
            self._write_stage(line)

    def close(self) -> None:
        self._close()
        self._pending = []  # kfp's lines after the last task: in pipeline.log only
        self._full.close()

    @property
    def failed(self) -> Stage | None:
        return next((stage for stage in self.stages.values() if stage.status == FAILED), None)
