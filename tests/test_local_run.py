"""The whole DAG through kfp.local's subprocess runner, on tiny settings, as a user runs it."""

import json
import math
import random
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO_ROOT
from tiny_models import build_causal_lm

CLI = [sys.executable, "-m", "pipeline"]
SUBJECTS = ["the cat", "the dog", "my post", "a day"]


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


def test_local_run_end_to_end_then_from_cache(tiny_run_params):
    directory = tiny_run_params
    output_dir = directory / "runs"
    first = run_cli("run", "--params", str(directory / "params.yaml"), "--set", "seed=3",
                    "--output-dir", str(output_dir))
    assert first.returncode == 0, first.stderr[-3000:]
    summary_line = next(line for line in first.stdout.splitlines() if line.startswith("summary: "))
    summary = json.loads(open(summary_line.removeprefix("summary: ")).read())

    # Derived from the pairs the data stage kept for training: ceil(pairs / batch 8) * 1 epoch.
    train_file = next(output_dir.glob("run-*/artifacts/*/prepare-preference-data/preference_data/train.jsonl"))
    train_pairs = len(train_file.read_text().splitlines())
    assert 60 <= train_pairs < 80
    assert summary["steps"] == {
        "reward_model_train_steps": math.ceil(train_pairs / 8),
        "reinforcement_learning_train_steps": 2,
    }
    assert 0.0 <= summary["reward_model"]["eval_accuracy"] <= 1.0
    policy = summary["policy"]
    for key in ("base_mean_reward", "tuned_mean_reward", "win_rate", "kl_to_base"):
        assert isinstance(policy[key], float)
    assert policy["base_gold_score"] is None and policy["tuned_gold_score"] is None
    for path in summary["paths"].values():
        assert (directory / path).exists()
    assert (output_dir.glob("run-*/parameters.json"))
    assert json.loads(next(output_dir.glob("run-*/parameters.json")).read_text())["seed"] == 3
    assert "<table" in open(summary["paths"]["report_html"]).read()

    # Same inputs, same code: every step comes from the cache.
    time.sleep(1)  # run directories are named by the second
    started = time.monotonic()
    second = run_cli("run", "--params", str(directory / "params.yaml"), "--set", "seed=3",
                     "--output-dir", str(output_dir))
    assert second.returncode == 0, second.stderr[-3000:]
    second_summary_path = next(
        line for line in second.stdout.splitlines() if line.startswith("summary: ")
    ).removeprefix("summary: ")
    assert second_summary_path != summary_line.removeprefix("summary: ")
    # Every output comes from the first run's directory: no step ran again.
    assert json.loads(open(second_summary_path).read()) == summary
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("preference_dataset=/no/such/file.jsonl", "preference_dataset"),
        ("large_model_reference=text-bison@001", "not supported"),
        ("large_model_reference=some model", "unknown model reference"),
        ("kl_coeff=-1", "kl_coeff"),
        ("reward_model_train_steps=ten", "reward_model_train_steps"),
    ],
)
def test_bad_input_fails_in_seconds_with_one_line(tiny_run_params, override, fragment):
    started = time.monotonic()
    result = run_cli("run", "--params", str(tiny_run_params / "params.yaml"), "--set", override,
                     "--output-dir", str(tiny_run_params / "bad-runs"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and fragment in result.stderr
    assert time.monotonic() - started < 30
    assert not (tiny_run_params / "bad-runs").exists()
