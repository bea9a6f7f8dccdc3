"""Following kfp.local's output: stage lines, per-stage logs, progress and failure reasons.

The streams below are kfp.local 2.17's own output, recorded from real runs of this pipeline and
shortened (executor inputs cut, a few hundred tqdm updates left out); colours included.
"""

import io
import json

import pytest

from cli.console import LiveConsole, PlainConsole, VerboseConsole, finished_line, format_seconds
from cli.kfp_stream import (
    CACHED, FAILED, SUCCEEDED, StreamSplitter, failure_reason, parse_progress, parse_trainer_metrics, strip_ansi,
)

C, G, R, M, X = "\x1b[96m", "\x1b[92m", "\x1b[91m", "\x1b[95m", "\x1b[0m"
TITLES = {"resolve-base-model": "Resolve base model", "prepare-preference-data": "Prepare preference data",
          "train-reward-model": "Train reward model", "tune-policy": "Tune policy (PPO)"}
RULE = "-" * 80

RECORDED_SUCCESS = f"""\
03:12:26.350 - INFO - Running pipeline: {M}'rlhf-pipeline'{X}
{RULE}
/work/main/.venv/lib/python3.11/site-packages/kfp/local/orchestrator/task_executor.py:100: UserWarning: Task 'resolve-base-model': settings ['display_name'] have no effect in the current local runner and will be ignored.
  _warn_local_only_noops(task_name, task_spec, executor_spec.container)
03:12:26.353 - INFO - Executing task {C}'resolve-base-model'{X}
/work/main/.venv/lib/python3.11/site-packages/kfp/local/subprocess_task_handler.py:81: RuntimeWarning: You may be attemping to run a task that uses custom or non-Python base image "rlhf-pipeline:0.1.0" in a Python environment.
  warnings.warn(
03:12:26.353 - INFO - Streamed logs:

    [KFP Executor 2026-12-02 03:12:26,396 INFO]: Got executor_input:
    {{
        "inputs": {{
            "parameterValues": {{
                "seed": 0,
                "large_model_reference": "builtin:tiny-summarizer"
            }}
        }}
    }}
    tiny model warm-up:   0%|          | 0/300 [00:00<?, ?it/s]
    tiny model warm-up:   0%|          | 0/300 [00:00<?, ?it/s, loss=6.952]
    tiny model warm-up:   1%|          | 2/300 [00:00<00:26, 11.43it/s, loss=6.942]
    tiny model warm-up:  89%|████████▊ | 266/300 [00:18<00:02, 14.47it/s, loss=0.560]
    tiny model warm-up: 100%|██████████| 300/300 [00:20<00:00, 14.50it/s, loss=0.496]
    Writing model shards: 100%|██████████| 1/1 [00:00<00:00, 355.63it/s]
    built the tiny summarizer in /tmp/runs/run-20261202-031226/artifacts/rlhf-pipeline-2026-12-02-03-12-26-349828/resolve-base-model/model: 459392 parameters, warm-up loss 0.4958, 23.4 s
    [KFP Executor 2026-12-02 03:12:50,737 INFO]: Wrote executor output file to /tmp/runs/run-20261202-031226/artifacts/rlhf-pipeline-2026-12-02-03-12-26-349828/resolve-base-model/executor_output.json.
    


03:12:51.481 - INFO - Task {C}'resolve-base-model'{X} finished with status {G}SUCCESS{X}
03:12:51.482 - INFO - Task {C}'resolve-base-model'{X} outputs:
    Output: 'builtin:tiny-summarizer'
    model: Model( name='model',
                  uri='/tmp/runs/run-20261202-031226/artifacts/rlhf-pipeline-2026-12-02-03-12-26-349828/resolve-base-model/model',
                  metadata={{'kind': 'builtin', 'name_or_path': 'builtin:tiny-summarizer'}} )
{RULE}
03:12:51.483 - INFO - Task prepare-preference-data cache hit (key=2c630d420b9b); skipping execution.
03:12:58.606 - INFO - Executing task {C}'train-reward-model'{X}
03:12:58.607 - INFO - Streamed logs:

    Filtering train >153 tokens: 100%|██████████| 2700/2700 [00:00<00:00, 139065.02 examples/s]
     63%|██████▎   | 54/86 [00:17<00:10,  2.94it/s]
                                                   
    {{'loss': '0.2545', 'grad_norm': '1.196', 'learning_rate': '0.0001975', 'mean_reward': '-1.012', 'accuracy': '0.9187', 'epoch': '1.284'}}
    
     99%|█████████▉| 85/86 [00:28<00:00,  2.87it/s]
                                                   
    {{'train_runtime': '28.62', 'train_samples_per_second': '192.3', 'train_loss': '0.3423', 'accuracy': '0.9167'}}
    
    100%|██████████| 86/86 [00:28<00:00,  3.00it/s]
    Loading weights: 100%|██████████| 21/21 [00:00<00:00, 9863.42it/s]
    

03:13:32.988 - INFO - Task {C}'train-reward-model'{X} finished with status {G}SUCCESS{X}
03:13:32.989 - INFO - Task {C}'train-reward-model'{X} has no outputs
{RULE}
03:14:25.885 - INFO - Pipeline {M}'rlhf-pipeline'{X} finished with status {G}SUCCESS{X}
"""

RECORDED_FAILURE = f"""\
03:22:58.100 - INFO - Executing task {C}'prepare-preference-data'{X}
03:22:58.101 - INFO - Streamed logs:

    [KFP Executor 2026-12-02 03:22:58,140 INFO]: Got executor_input:
    {{}}
    Traceback (most recent call last):
      File "<frozen runpy>", line 198, in _run_module_as_main
      File "/work/main/.venv/lib/python3.11/site-packages/kfp/dsl/executor.py", line 453, in execute
        result = self.func(**func_kwargs)
                 ^^^^^^^^^^^^^^^^^^^^^^^^
      File "/work/main/components/common/data/loading.py", line 199, in _check_usable
        raise UserInputError(f"{{ledger.source}}: no usable rows remain: {{ledger.reasons_summary()}}")
    components.common.errors.UserInputError: /data/preference.jsonl: no usable rows remain: 80 prompt_too_long. First: /data/preference.jsonl, line 1, field 'prompt': 'prompt' has 8 tokens, over prompt_sequence_length=2
    

03:23:01.893 - ERROR - Task {C}'prepare-preference-data'{X} finished with status {R}FAILURE{X}
{RULE}
03:23:01.894 - INFO - Cleaned up workspace: /tmp/kfp-workspace-z8vgo1w9
RuntimeError: Pipeline {M}'rlhf-pipeline'{X} finished with status {R}FAILURE{X}. Inner task failed: {C}'prepare-preference-data'{X}.
"""

UNEXPECTED_TRACEBACK = """\
Traceback (most recent call last):
  File "/work/main/components/train_reward_model/training.py", line 130, in train
    model = AutoModelForSequenceClassification.from_pretrained(source)
OSError: Error no file named model.safetensors, or pytorch_model.bin, found in directory /tmp/broken.
""".splitlines()


class Recorder:
    """A listener that records what happened, in order."""

    def __init__(self):
        self.events, self.raw = [], []

    def stage_started(self, stage):
        self.events.append(("started", stage.task))

    def stage_progress(self, stage):
        self.events.append(("progress", stage.task, stage.progress_text()))

    def stage_finished(self, stage):
        self.events.append((stage.status, stage.task))

    def raw_line(self, line):
        self.raw.append(line)


def follow(text, tmp_path, listener=None, origin_of=None):
    listener = listener or Recorder()
    splitter = StreamSplitter(tmp_path / "logs", TITLES, listener, origin_of=origin_of)
    for line in text.splitlines(keepends=True):
        splitter.feed(line)
    splitter.close()
    return splitter, listener


@pytest.mark.parametrize("line, expected", [
    ("tiny model warm-up:   1%|          | 2/300 [00:00<00:26, 11.43it/s, loss=6.942]",
     ("tiny model warm-up", 2, 300, 1, "11.43it/s", "00:26", "loss=6.942")),
    (" 63%|██████▎   | 54/86 [00:17<00:10,  2.94it/s]", ("", 54, 86, 63, "2.94it/s", "00:10", "")),
    ("PPO:   3%|▎         | 1/32 [00:01<00:32,  1.06s/step, kl=0.000, reward=-1.031]",
     ("PPO", 1, 32, 3, "1.06s/step", "00:32", "kl=0.000, reward=-1.031")),
    ("tuned policy: generating:  15%|█▌        | 2/13 [00:00<00:00, 17.43batch/s]",
     ("tuned policy: generating", 2, 13, 15, "17.43batch/s", "00:00", "")),
    ("Filtering train >153 tokens: 100%|██████████| 2700/2700 [00:00<00:00, 139065.02 examples/s]",
     ("Filtering train >153 tokens", 2700, 2700, 100, "139065.02 examples/s", "00:00", "")),
    ("shards: 50%|#####     | 1.50k/3.00k [1:02:03<1:02:03, 2.1it/s]",
     ("shards", 1500, 3000, 50, "2.1it/s", "1:02:03", "")),
])
def test_tqdm_lines_are_read_as_progress(line, expected):
    progress = parse_progress(line)
    assert (progress.desc, progress.n, progress.total, progress.percent, progress.rate, progress.remaining,
            progress.postfix) == expected


@pytest.mark.parametrize("line", ["", "    {", "built the tiny summarizer: 459392 parameters", "100% done",
                                  "Output: 'builtin:tiny-summarizer'"])
def test_other_lines_are_not_progress(line):
    assert parse_progress(line) is None


def test_trainer_log_lines_give_the_key_figures_and_the_end_summary_is_left_out():
    assert parse_trainer_metrics("{'loss': '0.2545', 'grad_norm': '1.196', 'accuracy': '0.9187'}") == {
        "loss": "0.2545", "accuracy": "0.9187"}
    assert parse_trainer_metrics("{'train_runtime': '28.62', 'train_loss': '0.34', 'accuracy': '0.91'}") is None
    assert parse_trainer_metrics("{'loss': __import__('os')}") is None
    assert parse_trainer_metrics('{"inputs": {') is None


def test_a_recorded_run_is_split_into_one_log_per_stage(tmp_path):
    splitter, listener = follow(RECORDED_SUCCESS, tmp_path, origin_of=lambda key: f"run-of-{key}")
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "pipeline.log", "prepare-preference-data.log", "resolve-base-model.log", "train-reward-model.log"]
    # the whole stream, colours and all, is in pipeline.log
    assert (logs / "pipeline.log").read_text() == RECORDED_SUCCESS
    resolve = (logs / "resolve-base-model.log").read_text()
    # kfp's warning about the task comes before its start line, and belongs to it
    assert resolve.startswith("/work/main/.venv/lib/python3.11/site-packages/kfp/local/orchestrator/task_executor.py")
    assert '"large_model_reference": "builtin:tiny-summarizer"' in resolve and "Task 'resolve-base-model' outputs:" in resolve
    assert "train-reward-model" not in resolve and "\x1b[" not in resolve
    assert "cache hit (key=2c630d420b9b)" in (logs / "prepare-preference-data.log").read_text()
    reward = (logs / "train-reward-model.log").read_text()
    assert "Executing task 'train-reward-model'" in reward and "has no outputs" in reward
    assert "Pipeline 'rlhf-pipeline' finished" not in reward

    assert [event for event in listener.events if event[0] != "progress"] == [
        ("started", "resolve-base-model"), (SUCCEEDED, "resolve-base-model"),
        (CACHED, "prepare-preference-data"),
        ("started", "train-reward-model"), (SUCCEEDED, "train-reward-model")]
    stages = splitter.stages
    assert [s.index for s in stages.values()] == [1, 2, 3] and {s.total for s in stages.values()} == {4}
    assert stages["resolve-base-model"].seconds == pytest.approx(25.128)
    assert stages["prepare-preference-data"].origin == "run-of-2c630d420b9b"
    assert splitter.pipeline_status == "SUCCESS" and splitter.failed is None
    assert listener.raw == RECORDED_SUCCESS.splitlines()


def test_stage_lines_name_the_stage_its_log_its_duration_and_what_it_did(tmp_path):
    out = io.StringIO()
    follow(RECORDED_SUCCESS, tmp_path, PlainConsole(out, clock=lambda: 0.0), origin_of=lambda key: "run-20261202-031226")
    assert out.getvalue().splitlines() == [
        "03:12:26 [1/4] Resolve base model: started (log: logs/resolve-base-model.log)",
        "03:12:51 [1/4] Resolve base model: done in 25 s; tiny model warm-up 300/300 (100%), 14.50it/s, loss=0.496",
        "03:12:51 [2/4] Prepare preference data: cached (outputs of run-20261202-031226)",
        "03:12:58 [3/4] Train reward model: started (log: logs/train-reward-model.log)",
        "03:13:32 [3/4] Train reward model: done in 34 s; steps 86/86 (100%), 3.00it/s, loss=0.2545, accuracy=0.9187",
    ]


def test_a_stages_warnings_are_shown_under_its_done_line_and_kept_in_its_log(tmp_path):
    warned = RECORDED_SUCCESS.replace(
        "    built the tiny summarizer", "    warning: no learning signal in any of the 2 steps\n    built the tiny summarizer")
    out = io.StringIO()
    follow(warned, tmp_path, PlainConsole(out, clock=lambda: 0.0), origin_of=lambda key: "run-20261202-031226")
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("03:12:51 [1/4] Resolve base model: done in 25 s")
    assert lines[2] == "03:12:51 [1/4] Resolve base model: warning: no learning signal in any of the 2 steps"
    assert lines[3].startswith("03:12:51 [2/4] Prepare preference data: cached")
    assert "warning: no learning signal" in (tmp_path / "logs" / "resolve-base-model.log").read_text()


def test_a_plain_console_prints_progress_at_most_every_interval(tmp_path):
    now = [0.0]
    out = io.StringIO()
    console = PlainConsole(out, clock=lambda: now[0], interval=30.0)
    lines = RECORDED_SUCCESS.splitlines(keepends=True)
    splitter = StreamSplitter(tmp_path / "logs", TITLES, console)
    for line in lines:
        if "tiny model warm-up" in line:
            now[0] += 20.0  # each update arrives 20 s after the one before
        splitter.feed(line)
    splitter.close()
    progress = [line for line in out.getvalue().splitlines() if "warm-up" in line and "done in" not in line]
    # 5 updates, 100 s: a line at 40 s and at 80 s (each 30 s or more after the one before), no more
    assert len(progress) == 2
    assert progress[0].endswith("[1/4] Resolve base model: tiny model warm-up 0/300 (0%), loss=6.952")
    assert progress[1].endswith("[1/4] Resolve base model: tiny model warm-up 266/300 (89%), 14.47it/s, ETA 00:02, "
                                "loss=0.560")


def test_a_long_stage_prints_fewer_lines_as_it_goes_on(tmp_path):
    now = [0.0]
    out = io.StringIO()
    console = PlainConsole(out, clock=lambda: now[0], interval=30.0)
    splitter = StreamSplitter(tmp_path / "logs", TITLES, console)
    splitter.feed("03:12:26.353 - INFO - Executing task 'tune-policy'")
    for step in range(3600):  # an update every 10 s for ten hours
        now[0] += 10.0
        splitter.feed(f"    PPO:  50%|#####     | {step}/7200 [00:01<00:01,  1.00step/s]")
    splitter.close()
    lines = out.getvalue().splitlines()[1:]
    assert 45 <= len(lines) <= 60  # not 1200, as one line every 30 s would be
    assert lines[0].endswith("PPO 2/7200 (50%), 1.00step/s, ETA 00:01")


def test_a_verbose_console_prints_the_whole_stream_and_no_stage_lines(tmp_path):
    out = io.StringIO()
    follow(RECORDED_SUCCESS, tmp_path, VerboseConsole(out))
    assert out.getvalue() == RECORDED_SUCCESS


def test_a_live_console_prints_stage_lines_and_redraws_one_progress_line(tmp_path):
    from rich.console import Console

    screen = io.StringIO()
    console = LiveConsole(Console(file=screen, force_terminal=True, width=120, highlight=False, soft_wrap=True))
    with console:
        splitter = StreamSplitter(tmp_path / "logs", TITLES, console)
        for line in RECORDED_SUCCESS.splitlines()[:22]:  # into the warm-up
            splitter.feed(line)
        live_line = console.__rich__().text.plain
        for line in RECORDED_SUCCESS.splitlines()[22:]:
            splitter.feed(line)
        splitter.close()
    assert live_line.startswith("[1/4] Resolve base model (")
    assert live_line.endswith("s): tiny model warm-up 266/300 (89%), 14.47it/s, ETA 00:02, loss=0.560")
    shown = strip_ansi(screen.getvalue())
    assert "03:12:26 [1/4] Resolve base model: started (log: logs/resolve-base-model.log)" in shown
    assert "03:13:32 [3/4] Train reward model: done in 34 s" in shown


def test_a_failed_stage_gives_the_projects_message_and_its_log(tmp_path):
    out = io.StringIO()
    splitter, _ = follow(RECORDED_FAILURE, tmp_path, PlainConsole(out))
    failed = splitter.failed
    assert failed.status == FAILED and failed.task == "prepare-preference-data"
    assert failed.reason == ("/data/preference.jsonl: no usable rows remain: 80 prompt_too_long. First: "
                             "/data/preference.jsonl, line 1, field 'prompt': 'prompt' has 8 tokens, over "
                             "prompt_sequence_length=2")
    assert "Traceback (most recent call last):" in failed.log_path.read_text()
    assert out.getvalue().splitlines()[-1] == "03:23:01 [1/4] Prepare preference data: FAILED after 3.8 s"
    assert json.loads(json.dumps(failed.record()))["status"] == FAILED


def test_an_unexpected_error_gives_its_last_exception_line():
    assert failure_reason(UNEXPECTED_TRACEBACK) == (
        "OSError: Error no file named model.safetensors, or pytorch_model.bin, found in directory /tmp/broken.")


def test_a_chained_error_gives_the_last_one_and_no_traceback_gives_the_last_words():
    chained = ["Traceback (most recent call last):", '  File "a.py", line 1, in f', "KeyError: 'x'", "",
               "During handling of the above exception, another exception occurred:", "",
               "Traceback (most recent call last):", '  File "a.py", line 3, in f',
               "components.common.errors.UserInputError: model directory '/m' does not exist", ""]
    assert failure_reason(chained) == "model directory '/m' does not exist"
    assert failure_reason(["loading...", "Killed", ""]) == "Killed"
    assert failure_reason([]) == "the step ended without a message"


@pytest.mark.parametrize("seconds, text", [(0.06, "0.1 s"), (3.84, "3.8 s"), (25.1, "25 s"), (125, "2 min 05 s"),
                                           (3725, "1 h 02 min"), (None, "?")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert format_seconds(seconds) == text


def test_a_cached_stage_without_a_known_origin_just_says_cached(tmp_path):
    splitter, _ = follow("03:12:51.483 - INFO - Task tune-policy cache hit (key=abc); skipping execution.\n",
                         tmp_path)
    assert finished_line(splitter.stages["tune-policy"]) == "03:12:51 [1/4] Tune policy (PPO): cached"
