"""The whole DAG through kfp.local's subprocess runner, on tiny settings, as a user runs it: what the
console shows, what the run directory holds, the cache (and what makes it rerun), and failures."""

import json
import math
import os
import random
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from tiny_models import build_causal_lm

CLI = [sys.executable, "-m", "cli"]
SUBJECTS = ["the cat", "the dog", "my post", "a day"]
STAGES = {  # task (its log's name) -> the title its console lines show, in a PPO run
    "resolve-base-model": "Resolve base model",
    "plan-stages": "Plan stages",
    "prepare-preference-data": "Prepare preference data",
    "prepare-prompt-data": "Prepare prompt data",
    "skip-supervised-fine-tuning": "No supervised fine-tuning",
    "train-reward-model": "Train reward model",
    "tune-policy": "Tune policy (RL)",
    "evaluate": "Evaluate base vs tuned policy",
    "summarize-run": "Summarize run",
    "upload-model": "Upload and deploy tuned model",
    "upload-training-logs": "Upload training logs to TensorBoard",
}
SIDE_EFFECTS = {"upload-model", "upload-training-logs"}
# Steps of the other branches, and their titles.
BRANCH_STAGES = {
    "supervised-fine-tuning": "Supervised fine-tuning",
    "skip-reward-model": "No reward model",
    "tune-preference": "Tune policy on pairs (DPO/KTO)",
}
MAX_CONSOLE_LINES = 60
KFP_NOISE = ("Traceback", "Executing task", "[KFP Executor", "executor_input", "UserWarning", "LOAD REPORT", "it/s]",
             "Loading weights")
# A progress line's text (cli/kfp_stream.py Progress.describe): "PPO 3/32 (9%), 2.3s/step, ...".
PROGRESS_TEXT = re.compile(r"^.+ [\d.e+]+/[\d.e+]+ \(\d+%\)")


def write_task(directory):
    """Vertex-format preference and prompt files whose preferred answers say 'good'."""
    rng = random.Random(0)
    with open(directory / "preference.jsonl", "w") as handle:
        for index in range(80):
            subject, choice = rng.choice(SUBJECTS), rng.randint(0, 1)
            good, bad = f"good {subject}", f"bad {subject} was long"
            handle.write(json.dumps({
                "input_text": f"{subject} sat on mat {index} [summary]: ",
                "candidate_0": good if choice == 0 else bad,
                "candidate_1": bad if choice == 0 else good,
                "choice": choice,
            }) + "\n")
    with open(directory / "prompts.jsonl", "w") as handle:
        for index in range(40):
            handle.write(json.dumps({"input_text": f"{rng.choice(SUBJECTS)} ran in park {index} [summary]: "}) + "\n")


@pytest.fixture(scope="module")
def tiny_run_params(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-run")
    write_task(directory)
    build_causal_lm(directory / "model")
    params = {
        "preference_dataset": str(directory / "preference.jsonl"),
        "prompt_dataset": str(directory / "prompts.jsonl"),
        "large_model_reference": str(directory / "model"),
        "reward_model_train_epochs": 1, "reinforcement_learning_train_steps": 2,
        "batch_size": 8, "ppo_minibatch_size": 4, "ppo_epochs": 1,
        "target_sequence_length": 8, "prompt_sequence_length": 32, "max_eval_prompts": 4,
        "reward_model_lora_rank": 0, "policy_lora_rank": 0,
    }
    (directory / "params.yaml").write_text(yaml.safe_dump(params))
    return directory


def run_cli(*args, timeout=600):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def run_tiny(directory, *extra, output="runs"):
    return run_cli("run", "--params", str(directory / "params.yaml"), "--set", "seed=3",
                   "--output-dir", str(directory / output), *extra)


def value_of(result, name):
    """The path a result line `name: PATH` gives."""
    return next(line for line in result.stdout.splitlines() if line.startswith(f"{name}: ")).removeprefix(f"{name}: ")


def stage_states(result, stages=STAGES):
    """task -> what its console lines say happened: 'ran' (started, then done), 'cached', or the lines
    ([] for a step that did not run); every line counts the steps of one run, len(STAGES).

    Between started and done, a stage that runs longer than the console's interval (30 s, so on a
    loaded machine any stage) prints progress lines: they may come, and must be the stage's own
    progress."""
    states = {}
    for task, title in stages.items():
        lines = [line for line in result.stdout.splitlines()
                 if re.match(rf"\d\d:\d\d:\d\d \[\d+/{len(STAGES)}\] {re.escape(title)}: ", line)]
        said = [line.split(f"{title}: ", 1)[1] for line in lines]
        if len(said) == 1 and said[0].startswith("cached"):
            states[task] = "cached"
        elif (len(said) >= 2 and said[0] == f"started (log: logs/{task}.log)" and said[-1].startswith("done in ")
              and all(PROGRESS_TEXT.match(line) for line in said[1:-1])):
            states[task] = "ran"
        else:
            states[task] = said
    return states


def planned_states(result, stages=STAGES):
    """task -> what `run --dry-run` says a run would do with it: 'ran' (would run) or 'cached'."""
    states = {}
    for task, title in stages.items():
        said = re.findall(rf"^\[\d+/{len(STAGES)}\] {re.escape(title)}: (would run|cached)", result.stdout, re.MULTILINE)
        states[task] = {"would run": "ran", "cached": "cached"}[said[0]] if len(said) == 1 else said
    return states


def test_local_run_end_to_end_then_from_cache_then_after_an_edit(tiny_run_params):
    directory = tiny_run_params
    first = run_tiny(directory)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    console = first.stdout + first.stderr
    assert len(console.splitlines()) <= MAX_CONSOLE_LINES
    assert not [noise for noise in KFP_NOISE if noise in console], console
    assert stage_states(first) == {task: "ran" for task in STAGES}
    assert "checked preference_dataset: 72 train + 8 eval pairs (80 rows read)" in console

    run_dir = directory / "runs" / value_of(first, "run directory").rsplit("/", 1)[1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert value_of(first, "summary") == str(run_dir / "summary.json")
    assert value_of(first, "report") == str(run_dir / "report.html") == summary["paths"]["report_html"]
    assert "<table" in (run_dir / "report.html").read_text() and (run_dir / "report.md").is_file()
    # every stage's whole output is in its log, named in its line
    for task in STAGES:
        assert f"Executing task '{task}'" in (run_dir / "logs" / f"{task}.log").read_text()
    assert "it/s]" in (run_dir / "logs" / "train-reward-model.log").read_text()
    assert "Loading weights" not in (run_dir / "logs" / "evaluate.log").read_text()  # libraries' bars are off

    # Derived from the pairs the data stage kept for training: ceil(pairs / batch 8) * 1 epoch.
    train_file = next(run_dir.glob("artifacts/*/prepare-preference-data/preference_data/train.jsonl"))
    train_pairs = len(train_file.read_text().splitlines())
    assert 60 <= train_pairs < 80
    assert summary["steps"] == {
        "reward_model_train_steps": math.ceil(train_pairs / 8),
        "reinforcement_learning_train_steps": 2,
        "preference_tuning_train_steps": 0,
    }
    assert summary["algorithm"] == "ppo"
    assert stage_states(first, BRANCH_STAGES) == {task: [] for task in BRANCH_STAGES}  # the branches not taken
    # end to end: the evaluation measured the held-out pairs the data stage kept and the answers in
    # the run's predictions, and the summary says what it measured
    reward_model = summary["reward_model"]
    assert reward_model["eval_pairs"] == 80 - train_pairs
    assert (reward_model["eval_accuracy"] * reward_model["eval_pairs"]).is_integer()  # a share of those pairs
    policy = summary["policy"]
    answers = {name: [json.loads(line)["prediction"] for line in
                      (run_dir / "predictions" / f"{name}_predictions.jsonl").read_text().splitlines()]
               for name in ("base", "tuned")}
    assert policy["eval_prompts"] == len(answers["base"]) == len(answers["tuned"]) == 4  # max_eval_prompts
    assert (policy["win_rate"] * 4 * 2).is_integer()  # wins and half ties over those 4 prompts
    assert policy["tuned_minus_base_reward"] == pytest.approx(policy["tuned_mean_reward"] - policy["base_mean_reward"])
    assert policy["base_gold_score"] is None and policy["tuned_gold_score"] is None
    # every path the summary names lies in the run directory
    assert set(summary["paths"]) == {"policy", "reward_model", "report_html", "report_markdown", "predictions"}
    assert all(path.startswith(f"{run_dir}/") and os.path.exists(path) for path in summary["paths"].values())
    parameters = json.loads((run_dir / "parameters.json").read_text())
    assert parameters["seed"] == 3 and parameters["preference_data_fingerprint"].startswith("sha256:")
    assert {s["task"]: s["status"] for s in json.loads((run_dir / "stages.json").read_text())} == {
        task: "succeeded" for task in STAGES}

    # Same inputs, same code: every step comes from the cache, except the uploads (side effects).
    second = run_tiny(directory)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    second_dir = directory / "runs" / value_of(second, "run directory").rsplit("/", 1)[1]
    assert second_dir != run_dir
    states = stage_states(second)
    assert states == {task: "ran" if task in SIDE_EFFECTS else "cached" for task in STAGES}
    assert f"Train reward model: cached (outputs of {run_dir.name})" in second.stdout
    # a complete run directory of its own, whose summary and report are reachable from it
    second_summary = json.loads((second_dir / "summary.json").read_text())
    assert {k: v for k, v in second_summary.items() if k != "paths"} == {k: v for k, v in summary.items() if k != "paths"}
    assert value_of(second, "report") == str(second_dir / "report.html") == second_summary["paths"]["report_html"]
    assert (second_dir / "report.html").read_bytes() == (run_dir / "report.html").read_bytes()
    # the cached models in it as hard links to the first run's: no space used twice
    assert second_summary["paths"]["policy"] == str(second_dir / "policy")
    weights = next((run_dir / "policy").glob("*.safetensors"))
    assert (second_dir / "policy" / weights.name).stat().st_ino == weights.stat().st_ino

    # The preference file fixed in place: its stage and every stage after it run again.
    preference = directory / "preference.jsonl"
    rows = preference.read_text().splitlines()
    rows[0] = rows[0].replace("sat on mat 0", "sat on the mat 0")
    preference.write_text("\n".join(rows) + "\n")
    unaffected = ("resolve-base-model", "plan-stages", "prepare-prompt-data", "skip-supervised-fine-tuning")
    expected = {task: "cached" if task in unaffected else "ran" for task in STAGES}
    # --dry-run says so first, running nothing and making no run directory
    runs_before = sorted((directory / "runs").iterdir())
    planned = run_tiny(directory, "--dry-run")
    assert planned.returncode == 0, planned.stdout[-3000:] + planned.stderr[-3000:]
    assert planned_states(planned) == expected
    assert planned.stdout.splitlines()[-1] == (f"dry run: 7 of 11 stages would run, 4 come from the cache in "
                                               f"{directory / 'runs' / '.kfp_cache'}; nothing ran")
    assert sorted((directory / "runs").iterdir()) == runs_before
    third = run_tiny(directory)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert stage_states(third) == expected

    # --verbose: kfp's whole stream, and the results still at the end
    verbose = run_tiny(directory, "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "cache hit" in verbose.stdout and "Executing task" in verbose.stdout
    assert verbose.stdout.splitlines()[-1].startswith("report: ")

    # `runs` lists the four; removing all but the newest leaves it whole: its summary's paths, the
    # report's plot links and its tuned policy, which `chat` loads and answers with
    listed = run_cli("runs", "--output-dir", str(directory / "runs"))
    names = sorted(p.name for p in (directory / "runs").glob("run-*"))
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [[name, "succeeded", "ppo"] for name in names]
    assert listed.stdout.splitlines()[2].endswith(f"  {run_dir.name}")  # the second run's stages came from the first's
    removed = run_cli("runs", "--output-dir", str(directory / "runs"), "--keep-newest", "1")
    assert removed.returncode == 0 and len(removed.stdout.splitlines()) == 3, removed.stderr
    newest = directory / "runs" / names[-1]
    assert sorted(p.name for p in (directory / "runs").glob("run-*")) == [newest.name]
    newest_summary = json.loads((newest / "summary.json").read_text())
    assert all(os.path.exists(path) for path in newest_summary["paths"].values())
    links = re.findall(r"\]\(([^)]+\.png)\)", (newest / "report.md").read_text())
    assert links and all((newest / link).is_file() for link in links)
    answered = run_cli("chat", str(newest), "the cat sat on the mat [summary]: ", "--temperature", "0")
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("[1] the cat sat on the mat [summary]:\n=> ")


def test_a_failing_stage_says_why_in_one_line_with_its_log_and_no_traceback(tiny_run_params):
    """Only the data stages measure token lengths (with the model's tokenizer): with every prompt over
    a limit of 2 tokens and length_policy=drop, no usable row is left, and the first data stage to
    run (kfp.local picks which) fails."""
    result = run_cli("run", "--params", str(tiny_run_params / "params.yaml"), "--set", "length_policy=drop",
                     "--set", "prompt_sequence_length=2", "--output-dir", str(tiny_run_params / "failing-runs"))
    assert result.returncode == 1
    console = result.stdout + result.stderr
    assert "Traceback" not in console and len(console.splitlines()) <= 15
    failed = re.search(rf"\[\d+/{len(STAGES)}\] Prepare (preference|prompt) data: FAILED after [\d.]+ s$", result.stdout,
                       re.MULTILINE)
    assert failed, result.stdout
    kind = failed.group(1)
    data, rows, task = {"preference": ("preference.jsonl", 80, "prepare-preference-data"),
                        "prompt": ("prompts.jsonl", 40, "prepare-prompt-data")}[kind]
    error, log = result.stderr.splitlines()
    assert error.startswith(f"error: Prepare {kind} data failed: {tiny_run_params / data}: no usable rows remain: "
                            f"{rows} prompt_too_long. First: ")
    assert log.startswith("full log: ") and log.endswith(f"/logs/{task}.log")
    assert "UserInputError" in open(log.removeprefix("full log: ")).read()


def test_an_all_malformed_preference_file_fails_before_any_stage(tiny_run_params):
    bad = tiny_run_params / "all-bad.jsonl"
    bad.write_text("".join(json.dumps({"input_text": f"post {i}", "candidate_0": "a", "candidate_1": "b",
                                       "choice": 7}) + "\n" for i in range(50)) + "not json\n")
    result = run_cli("run", "--params", str(tiny_run_params / "params.yaml"), "--set", f"preference_dataset={bad}",
                     "--output-dir", str(tiny_run_params / "malformed-runs"))
    assert result.returncode == 2
    console = result.stdout + result.stderr
    assert "Traceback" not in console and len(console.splitlines()) <= 15
    assert result.stderr.startswith(f"error: preference_dataset: {bad}: 51 of 51 rows are bad (100.0%), more than "
                                    "max_bad_row_fraction=0.01: 50 bad_choice, 1 malformed_json. First: "
                                    f"{bad}, line 1, field 'choice': 'choice' must be 0 or 1, got 7")
    assert not (tiny_run_params / "malformed-runs").exists()


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("preference_dataset=/no/such/file.jsonl", "preference_dataset: /no/such/file.jsonl: no such file"),
        ("large_model_reference=text-bison@001", "not supported"),
        ("large_model_reference=some model", "unknown model reference"),
        ("large_model_reference=nosuch/model", "large_model_reference: 'nosuch/model' is not in the local Hugging Face"),
        ("kl_coeff=-1", "kl_coeff"),
        ("reward_model_train_steps=ten", "reward_model_train_steps"),
        ("eval_split_fraction=0", "eval_split_fraction is 0 and no eval_dataset is given: nothing is held out"),
        ("replica_count=2", "replica_count 2: a local run trains on this machine alone"),
    ],
)
def test_bad_input_fails_before_any_stage_with_one_line(tiny_run_params, override, fragment):
    result = run_cli("run", "--params", str(tiny_run_params / "params.yaml"), "--set", override,
                     "--output-dir", str(tiny_run_params / "bad-runs"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and fragment in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tiny_run_params / "bad-runs").exists()


def test_an_empty_params_file_is_an_error(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    result = run_cli("run", "--params", str(tmp_path / "empty.yaml"), "--output-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'empty.yaml'}: holds no parameters (empty)")
    assert not (tmp_path / "runs").exists()


USER_REWARD = '''
def says_good(completions, prompts=None, completion_ids=None, **columns):
    """Written for TRL's GRPOTrainer: 1 for a completion that says 'good', 0 otherwise."""
    return [1.0 if "good" in completion else 0.0 for completion in completions]
'''


def test_grpo_with_a_user_reward_function_and_no_pairs_trains_no_reward_model(tiny_run_params):
    directory = tiny_run_params
    (directory / "user_reward.py").write_text(USER_REWARD)
    result = run_tiny(directory, "--set", "algorithm=grpo", "--set", "num_generations=2",
                      "--set", "preference_dataset=", "--set", f"reward_function={directory / 'user_reward.py'}:says_good",
                      output="grpo-runs")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    taken = {**{k: v for k, v in STAGES.items() if k != "train-reward-model"}, "skip-reward-model": "No reward model"}
    assert stage_states(result, taken) == {task: "ran" for task in taken}
    assert stage_states(result, {"train-reward-model": STAGES["train-reward-model"]}) == {"train-reward-model": []}
    assert "checked reward_function:" in result.stdout and "checked preference_dataset" not in result.stdout
    summary = json.loads((directory / "grpo-runs").glob("run-*/summary.json").__next__().read_text())
    assert summary["algorithm"] == "grpo" and summary["paths"]["reward_model"] is None
    assert summary["steps"]["reward_model_train_steps"] == 0
    assert summary["reward_model"]["eval_accuracy"] is None
    # the user's function measured both policies: accuracy is the share of their answers that say 'good'
    run_dir = next((directory / "grpo-runs").glob("run-*"))
    for name in ("base", "tuned"):
        answers = [json.loads(line)["prediction"] for line in
                   (run_dir / "predictions" / f"{name}_predictions.jsonl").read_text().splitlines()]
        assert summary["policy"][f"{name}_accuracy"] == pytest.approx(sum("good" in a for a in answers) / len(answers))


def test_dpo_tunes_on_the_pairs_without_reward_model_or_rl(tiny_run_params):
    directory = tiny_run_params
    result = run_tiny(directory, "--set", "algorithm=dpo", "--set", "train_reward_model_for_eval=false",
                      output="dpo-runs")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    skipped = ("train-reward-model", "tune-policy")
    taken = {**{k: v for k, v in STAGES.items() if k not in skipped},
             "skip-reward-model": "No reward model", "tune-preference": BRANCH_STAGES["tune-preference"]}
    assert stage_states(result, taken) == {task: "ran" for task in taken}
    assert stage_states(result, {k: STAGES[k] for k in skipped}) == {k: [] for k in skipped}
    run_dir = next((directory / "dpo-runs").glob("run-*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algorithm"] == "dpo"
    # reinforcement_learning_train_steps (2 in params.yaml) counts the policy's steps whatever the algorithm
    assert summary["steps"] == {"reward_model_train_steps": 0, "reinforcement_learning_train_steps": 0,
                                "preference_tuning_train_steps": 2}
    assert summary["paths"]["reward_model"] is None and (directory / summary["paths"]["policy"]).exists()


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line holds `text` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:  # ended meanwhile
            continue
        if text in command and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc")
def test_a_terminated_run_stops_every_process_it_started(tiny_run_params, tmp_path):
    """SIGTERM to `rlhf-pipeline run` (a `timeout`, a scheduler) ends the run's child and its stages'
    processes too; before, they ran on, orphaned, writing into the run directory."""
    import signal
    import time

    output = tmp_path / "stopped"
    run = subprocess.Popen([*CLI, "run", "--params", str(tiny_run_params / "params.yaml"), "--output-dir", str(output)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
    for line in run.stdout:
        if "started (log:" in line:  # a stage's processes are running
            break
    assert _processes_mentioning(str(output)), "the run started no process of its own"
    run.send_signal(signal.SIGTERM)
    rest = run.stdout.read()
    assert run.wait(timeout=120) == 130 and "interrupted" in rest
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(output)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(output)) == []
