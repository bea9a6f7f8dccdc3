"""Running the whole DAG on this machine through kfp.local.

The pipeline runs in a child process (cli/local_child.py) whose stdout and stderr come back
through a pipe: this process splits that stream into `<run dir>/logs/<task>.log` (and the whole of
it into `logs/pipeline.log`) and shows one line per stage, with progress (cli/kfp_stream.py,
cli/console.py). A run directory holds, whether its stages ran or came from the cache:

    parameters.json  the values the pipeline ran with (dataset fingerprints included)
    summary.json     the headline figures; its `paths` name files of this directory only
    report.html      the evaluation report, to open in a browser
    report.md        the same in Markdown: the first side-by-side rows, plots as links into predictions/
    predictions/     both policies' answers to the held-out prompts, and the training curves' PNGs
    policy/          the tuned policy, a plain Hugging Face model directory (LoRA merged)
    reward_model/    the reward model, when one was trained
    stages.json      each stage: ran / cached (and from which run), seconds, log
    logs/            kfp's whole output and each stage's part of it
    artifacts/       the outputs of the stages that ran in this run

The outputs of stages that came from the cache stay in the run that wrote them; the run directory
holds hard links to them (copies across file systems), so deleting an older run never breaks a
newer one: only its cache entries go.
"""

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from pipeline.image import DEFAULT_IMAGE

RUNNERS = ("subprocess", "docker")
STOP_GRACE_SECONDS = 30  # how long a stopped run's processes get to end before they are killed
DATASET_PARAMETERS = ("preference_dataset", "prompt_dataset", "eval_dataset")
CACHE_DIR = ".kfp_cache"
CHECKPOINTS_DIR = "checkpoints"  # under the output dir: training checkpoints that survive a rerun
OUTCOME_FILE = "outcome.json"
RUN_NAME = re.compile(r"run-\d{8}-\d{6}(?:-\d+)?")
RUN_DIR_NAME = re.compile(rf"/({RUN_NAME.pattern})/")
REQUEST_FILE = "request.json"  # in logs/: what the child runs, and the process that follows it (`pid`)
# Libraries' own progress bars (transformers' "Loading weights", datasets' "Map"): without them a
# stage's progress line shows the stage's work. The stages' bars and the Trainer's are plain tqdm.
LIBRARY_BARS_OFF = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


@dataclass
class LocalRunConfig:
    runner: str = "subprocess"
    output_dir: Path = Path("rlhf-runs")
    enable_caching: bool = True
    image: str = DEFAULT_IMAGE
    dry_run: bool = False  # pretend every task that misses the cache (cli/dry_run.py)


@dataclass
class LocalRunResult:
    run_dir: Path
    summary_path: Path
    summary: dict[str, Any]
    report_path: Path | None = None
    stages: list[dict] = field(default_factory=list)


class RunFailed(Exception):
    """A stage failed: its title, the one-line reason and where its full log is."""

    def __init__(self, title: str, reason: str, log_path: Path):
        super().__init__(f"{title} failed: {reason}")
        self.title, self.reason, self.log_path = title, reason, log_path


def sample_tasks() -> dict:
    """The bundled sample tasks by name; the first is the default."""
    import embedded_default
    from embedded_default import arithmetic

    return {task.name: task for task in (embedded_default.TASK, arithmetic.TASK)}


DEFAULT_SAMPLE_TASK = "summaries"


def chosen_sample_task(user_values: dict[str, Any], task_name: str | None = None) -> str | None:
    """The sample task a run uses: the one named, the default one when the user names no dataset, or None."""
    if task_name is not None:
        return task_name
    if any(user_values.get(name) for name in ("preference_dataset", "prompt_dataset")):
        return None
    return DEFAULT_SAMPLE_TASK


def check_own_task_is_complete(user_values: dict[str, Any], task_name: str | None) -> None:
    """A run that names a dataset but no sample task is the user's own: say which required parameters it
    lacks, and that --sample-task keeps a sample task's other settings under the values given."""
    from pipeline.parameters import PARAMETERS

    missing = [p.name for p in PARAMETERS if p.required and p.name not in user_values]  # "" may be a value
    if task_name is not None or not missing:
        return
    tasks = " or ".join(f"--sample-task {name}" for name in sample_tasks())
    raise UserInputError(
        f"a run that names its own dataset also needs {', '.join(missing)} (set them with --set or --params); "
        f"to change only some of a sample task's settings, add {tasks}: it keeps the task's other settings"
    )


def with_sample_task(user_values: dict[str, Any], task_name: str | None) -> dict[str, Any]:
    """The user's values on top of those of the sample task `chosen_sample_task` picks."""
    if task_name is None:
        return dict(user_values)
    tasks = sample_tasks()
    if task_name not in tasks:
        raise UserInputError(f"unknown sample task {task_name!r}; there are: {', '.join(tasks)}")
    return {**tasks[task_name].parameter_values(), **user_values}


def local_parameter_values(params_file: str | None, sets: list[str], sample_task: str | None) -> tuple[dict[str, Any], str | None]:
    """The values a local run takes from --params, --set and --sample-task, checked against the pipeline,
    and the sample task they use (None: the user's own task)."""
    from cli.submission.parameter_file import load_parameter_values
    from cli.submission.validation import validate_for_pipeline

    given = load_parameter_values(params_file, sets)
    task = chosen_sample_task(given, sample_task)
    check_own_task_is_complete(given, task)
    return validate_for_pipeline(with_sample_task(given, task)), task


def check_runner(config: LocalRunConfig) -> None:
    """Refuse a runner that cannot start, before a run directory is made."""
    if config.runner not in RUNNERS:
        raise UserInputError(f"unknown runner '{config.runner}'; accepted: {', '.join(RUNNERS)}")
    if config.runner == "docker":
        try:
            import docker

            docker.from_env().ping()
        except Exception as error:  # the docker client raises several unrelated types
            raise UserInputError(
                f"--runner docker needs a running Docker engine ({error.__class__.__name__}: {error}); "
                f"build the image with `docker build -t {config.image} .` on a machine with Docker, "
                "or use the default subprocess runner"
            ) from None


def _init_kfp_local(config: LocalRunConfig, run_dir: Path) -> None:
    from kfp import local

    from cli.kfp_local_oneof import enable_artifact_oneof

    enable_artifact_oneof()
    runner = local.DockerRunner() if config.runner == "docker" else local.SubprocessRunner(use_venv=False)
    local.init(
        runner=runner,
        pipeline_root=str(run_dir / "artifacts"),
        enable_caching=config.enable_caching,
        cache_root=str(config.output_dir.resolve() / CACHE_DIR),
        raise_on_error=True,
    )


def explicit_values(values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter whose default only Vertex can fill, given explicitly as the empty string.

    kfp.local cannot read a None default from the spec, and takes Vertex's run placeholders (the
    default `project` and `location`) for I/O placeholders; every component reads "" as unset.
    """
    from components.common.vertex_placeholders import is_vertex_placeholder
    from pipeline.parameters import PARAMETERS

    unset = {
        p.name: ""
        for p in PARAMETERS
        if not p.required and (p.default is None or is_vertex_placeholder(p.default))
    }
    return {**unset, **values}


def new_run_dir(output_dir: Path) -> Path:
    """A new, empty run directory `run-YYYYmmdd-HHMMSS`, with `-2`, `-3`... when runs start in the same
    second (mkdir is atomic: two processes never get the same directory)."""
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("run-%Y%m%d-%H%M%S")
    for attempt in range(1, 10_000):
        run_dir = output_dir / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise UserInputError(f"{output_dir}: cannot make a new run directory for {stamp}")


@functools.lru_cache(maxsize=4)
def stage_titles(image: str = DEFAULT_IMAGE) -> dict[str, str]:
    """Task name -> the display name the pipeline UI shows, for every step of the DAG and its branches."""
    from pipeline.dag import build_pipeline

    spec = build_pipeline(image).pipeline_spec
    dags = [spec.root.dag] + [component.dag for component in spec.components.values() if component.HasField("dag")]
    return {
        name: task.task_info.name or name
        for dag in dags
        for name, task in dag.tasks.items()
        if spec.components[task.component_ref.name].executor_label  # a step, not a condition group
    }


@functools.lru_cache(maxsize=4)
def steps_per_run(image: str = DEFAULT_IMAGE) -> int:
    """How many steps one run executes: the top level's tasks, where each If/Else pair of
    pipeline/dag.py is one task and runs one step, that of the branch taken."""
    from pipeline.dag import build_pipeline

    return len(build_pipeline(image).pipeline_spec.root.dag.tasks)


def cache_origin(cache_root: Path, key_prefix: str) -> str:
    """The run directory whose outputs a cache entry holds, or "" when it cannot be told."""
    try:
        for entry in Path(cache_root).glob(f"{key_prefix}*.json"):
            match = RUN_DIR_NAME.search(entry.read_text(encoding="utf-8"))
            if match:
                return match.group(1)
    except OSError:
        pass
    return ""


# --- the child process ----------------------------------------------------------------------------

def execute_pipeline(values: dict[str, Any], config: LocalRunConfig, run_dir: Path) -> Path:
    """Run the DAG in this process (the child); the path of the `run_summary` artifact."""
    from pipeline.dag import build_pipeline

    _init_kfp_local(config, run_dir)
    pipeline_func = build_pipeline(config.image)
    task = pipeline_func(**explicit_values(values))
    return Path(task.outputs["run_summary"].path)


# --- the parent -----------------------------------------------------------------------------------

def child_environment(environ: dict[str, str]) -> dict[str, str]:
    """The child's environment: unbuffered output, and library progress bars off unless the user
    set those variables."""
    return {**LIBRARY_BARS_OFF, **environ, "PYTHONUNBUFFERED": "1"}


def _start_child(values: dict[str, Any], config: LocalRunConfig, run_dir: Path) -> subprocess.Popen:
    request = run_dir / "logs" / REQUEST_FILE
    request.write_text(json.dumps({
        "values": values, "run_dir": str(run_dir), "pid": os.getpid(),
        "config": {**asdict(config), "output_dir": str(Path(config.output_dir).resolve())},
    }, indent=2, sort_keys=True) + "\n")
    env = child_environment(dict(os.environ))
    # Its own process group, which its stages' processes join: stopping the run stops all of them at once.
    return subprocess.Popen(
        [sys.executable, "-m", "cli.local_child", str(request)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, encoding="utf-8", errors="replace", bufsize=1, env=env, start_new_session=True,
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _signal_group(process: subprocess.Popen, signum: int) -> bool:
    """Send `signum` to the child's process group (0: only ask whether it has a process left)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # every process of the group has ended
        return False
    return True


def _stop_group(process: subprocess.Popen) -> None:
    """SIGINT to the child and its stages' processes, as Ctrl-C in a terminal; whatever is left after
    STOP_GRACE_SECONDS (or at a second Ctrl-C) is killed."""
    import signal

    _signal_group(process, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    try:
        while time.monotonic() < deadline:
            process.poll()  # reaps the child once it ends, so that only live processes count
            if not _signal_group(process, 0):
                return
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _follow(process: subprocess.Popen, splitter) -> int:
    """Feed the child's output to `splitter` until it ends; its exit status.

    Ctrl-C, or a SIGTERM sent to this process (a `timeout`, a scheduler, a closed container), stops the
    child and every process its stages started (`_stop_group`), so that nothing keeps running or
    writing into the run directory once the command has returned.
    """
    import signal
    import threading

    terminate = None
    if threading.current_thread() is threading.main_thread():
        terminate = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for line in process.stdout:
            splitter.feed(line)
        return process.wait()
    except KeyboardInterrupt:
        _stop_group(process)
        raise
    finally:
        if terminate is not None:
            signal.signal(signal.SIGTERM, terminate)
        splitter.close()


PLACED_OUTPUTS = ("policy", "reward_model")  # summary paths that every run directory holds itself
PREDICTIONS_DIR = "predictions"  # the evaluation's predictions folder, beside its report artifacts


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, target)


def place(source: Path, target: Path) -> None:
    """`source` (a file or a folder) at `target` in hard links: no space is used twice, and `target`
    stays whole when the run that wrote `source` is deleted. Copies where links cannot be made."""
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


def finalize(run_dir: Path, summary_artifact: Path, stages: list[dict]) -> LocalRunResult:
    """Make `run_dir` complete whether its stages ran or came from the cache: summary.json,
    report.html, report.md with the predictions folder its plot links point into, the tuned policy
    and the reward model in it, and stages.json. Every path summary.json names lies in `run_dir`."""
    summary = json.loads(Path(summary_artifact).read_text(encoding="utf-8"))
    paths = dict(summary.get("paths", {}))
    report = None
    artifact = Path(paths.get("report_html", ""))
    if artifact.is_file():
        report = run_dir / "report.html"
        shutil.copyfile(artifact, report)
        paths["report_html"] = str(report)
        markdown = artifact.with_name("report_markdown")
        if markdown.is_file():
            shutil.copyfile(markdown, run_dir / "report.md")
            paths["report_markdown"] = str(run_dir / "report.md")
        predictions = artifact.with_name(PREDICTIONS_DIR)
        if predictions.is_dir():
            place(predictions, run_dir / PREDICTIONS_DIR)
            paths["predictions"] = str(run_dir / PREDICTIONS_DIR)
    for name in PLACED_OUTPUTS:
        if paths.get(name) and Path(paths[name]).exists():
            place(Path(paths[name]), run_dir / name)
            paths[name] = str(run_dir / name)
    summary["paths"] = paths
    summary_path = run_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (run_dir / "stages.json").write_text(json.dumps(stages, indent=2) + "\n")
    return LocalRunResult(run_dir, summary_path, summary, report, stages)


def with_local_checkpoints(values: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """`values` with the training checkpoints under `<output dir>/checkpoints` unless the user chose a place.

    kfp.local's pipeline root is the run's own folder, so a rerun would never find the checkpoints
    of the run it follows there; under the output dir, a rerun with equal inputs resumes.
    """
    checkpoint_root = values.get("checkpoint_root") or str(Path(output_dir).resolve() / CHECKPOINTS_DIR)
    return {**values, "checkpoint_root": checkpoint_root}


def _follow_child(values: dict[str, Any], config: LocalRunConfig, console, run_dir: Path) -> tuple[list[dict], dict]:
    """Run the child on `run_dir`, following it on `console`: the stages' records and the succeeded
    outcome. Raises RunFailed when a stage fails (its reason and log), UserInputError when the run
    could not start."""
    from cli.kfp_stream import StreamSplitter

    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cache_root = Path(config.output_dir).resolve() / CACHE_DIR
    splitter = StreamSplitter(logs, stage_titles(config.image), console, steps=steps_per_run(config.image),
                              origin_of=lambda key: cache_origin(cache_root, key))
    with console:
        code = _follow(_start_child(values, config, run_dir), splitter)
    stages = [stage.record() for stage in splitter.stages.values()]
    outcome_path = logs / OUTCOME_FILE
    outcome = json.loads(outcome_path.read_text()) if outcome_path.is_file() else {}
    if code == 0 and outcome.get("status") == "succeeded":
        return stages, outcome
    (run_dir / "stages.json").write_text(json.dumps(stages, indent=2) + "\n")
    if outcome.get("status") == "input-error":
        raise UserInputError(outcome["message"])
    failed = splitter.failed
    if failed is not None:
        raise RunFailed(failed.title, failed.reason, failed.log_path)
    from cli.kfp_stream import failure_reason

    reason = outcome.get("message") or failure_reason(list(splitter.tail))
    raise RunFailed("the local run", reason, logs / "pipeline.log")


def run_locally(values: dict[str, Any], config: LocalRunConfig, console=None,
                run_dir: Path | None = None) -> LocalRunResult:
    """Run the DAG with `values` in a new run directory, following it on `console`.

    Raises RunFailed when a stage fails (its reason and log), UserInputError when the run could
    not start."""
    from cli.console import PlainConsole

    run_dir = run_dir or new_run_dir(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    values = with_local_checkpoints(values, config.output_dir)
    (run_dir / "parameters.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    stages, outcome = _follow_child(values, config, console or PlainConsole(), run_dir)
    return finalize(run_dir, Path(outcome["summary_artifact"]), stages)


def plan_locally(values: dict[str, Any], config: LocalRunConfig, console) -> list[dict]:
    """What `run_locally` would do with `values`, with nothing run (cli/dry_run.py): each
    stage's record, status succeeded (it would run) or cached. Leaves no run directory."""
    import dataclasses
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rlhf-dry-run-") as scratch:
        stages, _ = _follow_child(with_local_checkpoints(values, config.output_dir),
                                  dataclasses.replace(config, dry_run=True), console, Path(scratch))
    return stages
