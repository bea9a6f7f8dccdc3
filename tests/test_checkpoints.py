"""Checkpoint and resume: a training run killed halfway (SIGKILL of its process group) and run again
ends exactly as an uninterrupted run; where checkpoints live and which of them count.

The killed run is a real process. It stops at a known point: it blocks, by a hook of this test,
where it would write the marker of its second checkpoint, so that it dies with one complete
checkpoint and one half-written one, as a process killed while saving would.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from components.common import checkpoints
from components.common.checkpoints import (
    COMPLETE_MARKER,
    checkpoint_to_resume,
    checkpoints_root,
    input_identity,
    interval_steps,
    mark_complete,
    task_checkpoint_dir,
    task_identity,
)
from components.common.distributed import TrainingProcesses
from components.common.models import Placement, write_model_reference
from components.common.trainer.checkpoints import checkpoint_interval
from components.train_reward_model.config import RewardTrainingConfig
from components.tune_policy.config import PolicyTuningConfig
from conftest import REPO_ROOT
from tiny_models import PROMPTS

CPU = Placement(torch.device("cpu"), torch.float32)
# Logged values that measure time: they differ between any two runs.
WALL_CLOCK_TAGS = ("time/", "tokens_per_second", "train_runtime", "_per_second")
WALL_CLOCK_METRICS = ("seconds_per_step", "tokens_per_second", "rollout_time_fraction")
KILLED_RUN_TIMEOUT_SECONDS = 600  # only bounds a broken run; nothing is measured

# The killed run: train with checkpoints, and block for good where the marker of `block_at` would be
# written (every file of that checkpoint is saved by then), telling the test through `ready`.
KILLED_RUN = """
import json, sys, threading
from pathlib import Path

import torch

request = json.loads(sys.argv[1])
torch.set_num_threads(1)
if request["stage"] == "ppo":
    from components.tune_policy import checkpointing as hooked
    from components.tune_policy.config import PolicyTuningConfig as Config
    from components.tune_policy.training import train_policy as train
else:
    from components.common.trainer import checkpoints as hooked
    from components.train_reward_model.config import RewardTrainingConfig as Config
    from components.train_reward_model.training import train_reward_model as train
from components.common.models import Placement

original = hooked.mark_complete


def block_before_the_marker(checkpoint, record):
    if checkpoint.name == request["block_at"]:
        Path(request["ready"]).write_text("blocked")
        threading.Event().wait()
    original(checkpoint, record)


hooked.mark_complete = block_before_the_marker
train(Config(**request["config"]), placement=Placement(torch.device("cpu"), torch.float32), **request["kwargs"])
"""


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The killed run uses one thread too: the same kernels, the same rounding."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_until_blocked(tmp_path: Path, stage: str, config, block_at: str, **kwargs) -> None:
    """Train in a process of its own until it blocks at `block_at`, then SIGKILL its process group."""
    ready = tmp_path / f"{stage}-blocked"
    request = {"stage": stage, "config": dataclasses.asdict(config), "kwargs": kwargs,
               "block_at": block_at, "ready": str(ready)}
    log = tmp_path / f"{stage}-killed-run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, json.dumps(request)],
            cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    deadline = time.monotonic() + KILLED_RUN_TIMEOUT_SECONDS
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert ready.exists(), f"the run never reached {block_at}:\n{log.read_text()[-3000:]}"
    assert process.returncode == -signal.SIGKILL


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
        if not any(part in tag for part in WALL_CLOCK_TAGS)
    }


def texts(log_dir: Path) -> dict[int, list[bytes]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {event.step: list(event.tensor_proto.string_val) for event in accumulator.Tensors("samples/text_summary")}


def weight_files(model_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(model_dir.glob("*.safetensors"))}


def assert_killed_at_the_second_checkpoint(folder: Path) -> None:
    assert (folder / "checkpoint-2" / COMPLETE_MARKER).is_file()
    assert (folder / "checkpoint-4").is_dir() and not (folder / "checkpoint-4" / COMPLETE_MARKER).exists()


# ---------------------------------------------------------------- resume equals an uninterrupted run


@pytest.mark.parametrize("lora_rank", [2, 0])
def test_ppo_killed_halfway_resumes_and_ends_as_an_uninterrupted_run(
    tmp_path, tiny_causal_lm, length_reward_model, capsys, lora_rank
):
    from components.tune_policy.training import train_policy

    config = PolicyTuningConfig(
        steps=6, batch_size=4, minibatch_size=2, epochs=2, max_new_tokens=5, max_prompt_tokens=32,
        lora_rank=lora_rank, kl_coeff=0.1, base_learning_rate=1e-2, seed=5,
    )
    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    sources = dict(policy_source=str(tiny_causal_lm), reward_source=str(length_reward_model),
                   prompts_path=str(prompts_path))
    straight = train_policy(config, **sources, output_dir=tmp_path / "straight" / "policy",
                            log_dir=tmp_path / "straight" / "logs", placement=CPU)

    folder = tmp_path / "checkpoints" / "tune_policy-0123"
    attempt = dict(**sources, output_dir=str(tmp_path / "resumed" / "policy"),
                   log_dir=str(tmp_path / "resumed" / "logs"), checkpoint_dir=str(folder), checkpoint_interval_steps=2)
    run_until_blocked(tmp_path, "ppo", config, block_at="checkpoint-4", **attempt)
    assert_killed_at_the_second_checkpoint(folder)
    assert list((tmp_path / "resumed" / "logs").glob("events.out.tfevents.*"))  # the killed run's log

    capsys.readouterr()
    resumed = train_policy(config, placement=CPU, **attempt)
    assert f"resuming PPO from step 2 of 6 (checkpoint {folder / 'checkpoint-2'})" in capsys.readouterr().out

    deterministic = {name: value for name, value in straight.items() if name not in WALL_CLOCK_METRICS}
    assert {name: resumed[name] for name in deterministic} == deterministic
    assert weight_files(tmp_path / "resumed" / "policy") == weight_files(tmp_path / "straight" / "policy")
    assert len(list((tmp_path / "resumed" / "logs").glob("events.out.tfevents.*"))) == 1
    resumed_scalars = scalars(tmp_path / "resumed" / "logs")
    assert resumed_scalars == scalars(tmp_path / "straight" / "logs")
    assert [step for step, _ in resumed_scalars["reward"]] == list(range(6))
    assert texts(tmp_path / "resumed" / "logs") == texts(tmp_path / "straight" / "logs")
    assert not folder.exists()  # deleted once the policy is saved


@pytest.mark.parametrize("lora_rank", [4, 0])
def test_reward_model_killed_halfway_resumes_and_ends_as_an_uninterrupted_run(
    tmp_path, tiny_causal_lm, capsys, lora_rank
):
    from components.train_reward_model.training import train_reward_model
    from test_train_reward_model import write_pairs

    write_pairs(tmp_path / "train.jsonl", 64, seed=1)
    write_pairs(tmp_path / "eval.jsonl", 16, seed=2)
    config = RewardTrainingConfig(
        steps=8, batch_size=8, max_micro_batch_size=4, learning_rate_multiplier=10.0, lora_rank=lora_rank,
        logging_steps=2,
    )
    data = dict(base_source=str(tiny_causal_lm), train_path=str(tmp_path / "train.jsonl"),
                eval_path=str(tmp_path / "eval.jsonl"))
    straight = train_reward_model(config, **data, output_dir=tmp_path / "straight" / "reward",
                                  log_dir=tmp_path / "straight" / "logs", placement=CPU)

    folder = tmp_path / "checkpoints" / "train_reward_model-0123"
    attempt = dict(**data, output_dir=str(tmp_path / "resumed" / "reward"), log_dir=str(tmp_path / "resumed" / "logs"),
                   checkpoint_dir=str(folder), checkpoint_interval_steps=2)
    run_until_blocked(tmp_path, "rm", config, block_at="checkpoint-4", **attempt)
    assert_killed_at_the_second_checkpoint(folder)

    capsys.readouterr()
    resumed = train_reward_model(config, placement=CPU, **attempt)
    expected = f"resuming reward-model training from step 2 of 8 (checkpoint {folder / 'checkpoint-2'})"
    assert expected in capsys.readouterr().out

    assert resumed == straight  # train_loss over all 8 steps included
    assert weight_files(tmp_path / "resumed" / "reward") == weight_files(tmp_path / "straight" / "reward")
    assert len(list((tmp_path / "resumed" / "logs").glob("events.out.tfevents.*"))) == 1
    resumed_scalars = scalars(tmp_path / "resumed" / "logs")
    assert resumed_scalars == scalars(tmp_path / "straight" / "logs")
    assert [step for step, _ in resumed_scalars["rank_loss"]] == [2, 4, 6, 8]
    assert "num_tokens" in resumed_scalars and "train_loss" in resumed_scalars
    assert not folder.exists()


def train_policy_stopping_at(config: PolicyTuningConfig, stop_at: int, **kwargs) -> dict:
    """Run in each of several processes: PPO that fails right after saving the checkpoint of step
    `stop_at` (the launcher then ends every process)."""
    from components.tune_policy import training

    save = training.save_checkpoint

    def save_then_fail(folder, progress, state):
        save(folder, progress, state)
        if progress.steps_done == stop_at:
            raise RuntimeError(f"stopped after the checkpoint of step {stop_at}")

    training.save_checkpoint = save_then_fail
    return training.train_policy(config, **kwargs)


@pytest.mark.parametrize("sharding, lora_rank", [("none", 2), ("fsdp", 0)])
def test_ppo_in_two_processes_resumes_with_each_process_random_states(
    tmp_path, tiny_causal_lm, length_reward_model, monkeypatch, capfd, sharding, lora_rank
):
    """Each process samples with its own random states: each saves and restores its own. Sharded
    (FSDP2, every weight trained, a sharded reference), each process saves and loads its own shards of
    the weights and of Adam's state, and the resumed run still ends bit for bit as the straight one."""
    from components.common.distributed import run_in_processes
    from components.tune_policy.training import train_policy

    tests = str(Path(__file__).parent)  # the launched processes import this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = PolicyTuningConfig(steps=5, batch_size=4, minibatch_size=2, forward_batch_size=2, epochs=1,
                                lora_rank=lora_rank, max_new_tokens=5, max_prompt_tokens=32, base_learning_rate=1e-2,
                                sharding=sharding)
    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS[:4]))
    sources = dict(policy_source=str(tiny_causal_lm), reward_source=str(length_reward_model),
                   prompts_path=str(prompts_path))
    straight = run_in_processes(2, train_policy, config, **sources, output_dir=str(tmp_path / "straight"),
                                log_dir=str(tmp_path / "straight-logs"))
    folder = tmp_path / "checkpoints"
    attempt = dict(**sources, output_dir=str(tmp_path / "resumed"), log_dir=str(tmp_path / "resumed-logs"),
                   checkpoint_dir=str(folder), checkpoint_interval_steps=2)
    with pytest.raises(RuntimeError, match="training in 2 processes failed"):
        run_in_processes(2, train_policy_stopping_at, config, stop_at=4, **attempt)
    assert sorted(path.name for path in (folder / "checkpoint-4").glob("random_states_*.pt")) == [
        "random_states_0.pt", "random_states_1.pt"
    ]
    # torch.distributed.checkpoint: sharded, each weight is saved as one piece per process; replicated, whole
    from torch.distributed.checkpoint import FileSystemReader

    saved = FileSystemReader(folder / "checkpoint-4" / "training_state").read_metadata().state_dict_metadata
    pieces = {len(saved[name].chunks) for name in saved if name.startswith("weights.") and "layers" in name}
    assert pieces == ({2} if sharding == "fsdp" else {1})

    capfd.readouterr()
    resumed = run_in_processes(2, train_policy, config, **attempt)
    assert f"resuming PPO from step 4 of 5 (checkpoint {folder / 'checkpoint-4'})" in capfd.readouterr().out
    assert {k: v for k, v in resumed.items() if k not in WALL_CLOCK_METRICS} == {
        k: v for k, v in straight.items() if k not in WALL_CLOCK_METRICS
    }
    assert weight_files(tmp_path / "resumed") == weight_files(tmp_path / "straight")
    assert scalars(tmp_path / "resumed-logs") == scalars(tmp_path / "straight-logs")


def train_reward_model_stopping_at(config: RewardTrainingConfig, stop_at: int, **kwargs) -> dict:
    """Run in each of several processes: reward-model training that fails once the checkpoint of step
    `stop_at` is complete (the launcher then ends every process)."""
    from components.common.trainer import checkpoints as trainer_checkpoints
    from components.train_reward_model.training import train_reward_model

    mark = trainer_checkpoints.mark_complete

    def mark_then_fail(folder, record):
        mark(folder, record)
        if Path(folder).name == f"checkpoint-{stop_at}":
            raise RuntimeError(f"stopped after the checkpoint of step {stop_at}")

    trainer_checkpoints.mark_complete = mark_then_fail
    return train_reward_model(config, **kwargs)


def test_a_sharded_reward_model_in_two_processes_resumes_from_its_shards_bit_for_bit(
    tmp_path, tiny_causal_lm, monkeypatch, capfd
):
    """accelerate's FSDP2 in the TRL-trained stages: each process writes its own shards of the weights
    and of Adam's state (torch.distributed.checkpoint), reads them back, and the resumed run ends bit
    for bit as the straight one."""
    from components.common.distributed import run_in_processes
    from test_train_reward_model import write_pairs

    tests = str(Path(__file__).parent)  # the launched processes import this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    write_pairs(tmp_path / "train.jsonl", 32, seed=1)
    write_pairs(tmp_path / "eval.jsonl", 8, seed=2)
    config = RewardTrainingConfig(steps=6, batch_size=4, max_micro_batch_size=2, learning_rate_multiplier=10.0,
                                  lora_rank=0, logging_steps=2, sharding="fsdp")
    data = dict(base_source=str(tiny_causal_lm), train_path=str(tmp_path / "train.jsonl"),
                eval_path=str(tmp_path / "eval.jsonl"))
    straight = run_in_processes(2, train_reward_model_stopping_at, config, stop_at=0, **data,
                                output_dir=str(tmp_path / "straight"), log_dir=str(tmp_path / "straight-logs"))
    folder = tmp_path / "checkpoints"
    attempt = dict(**data, output_dir=str(tmp_path / "resumed"), log_dir=str(tmp_path / "resumed-logs"),
                   checkpoint_dir=str(folder), checkpoint_interval_steps=2)
    with pytest.raises(RuntimeError, match="training in 2 processes failed"):
        run_in_processes(2, train_reward_model_stopping_at, config, stop_at=4, **attempt)
    from torch.distributed.checkpoint import FileSystemReader

    for state, ending in (("pytorch_model_fsdp_0", ".weight"), ("optimizer_0", ".exp_avg")):
        saved = FileSystemReader(folder / "checkpoint-4" / state).read_metadata().state_dict_metadata
        pieces = {len(saved[name].chunks) for name in saved if ".layers." in name and name.endswith(ending)}
        assert pieces == {2}, state

    capfd.readouterr()
    resumed = run_in_processes(2, train_reward_model_stopping_at, config, stop_at=0, **attempt)
    assert f"resuming reward-model training from step 4 of 6 (checkpoint {folder / 'checkpoint-4'})" in (
        capfd.readouterr().out)
    assert resumed == straight
    assert weight_files(tmp_path / "resumed") == weight_files(tmp_path / "straight")
    assert scalars(tmp_path / "resumed-logs") == scalars(tmp_path / "straight-logs")
    assert not folder.exists()


def test_checkpoints_do_not_change_a_run(tmp_path, tiny_causal_lm, length_reward_model):
    """Saving reads states and consumes no random numbers: a run with a checkpoint every step equals
    one without any (and leaves none behind)."""
    from components.tune_policy.training import train_policy

    config = PolicyTuningConfig(steps=3, batch_size=4, minibatch_size=2, epochs=1, max_new_tokens=5,
                       max_prompt_tokens=32, lora_rank=2, base_learning_rate=1e-2)
    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    for run, folder in (("without", ""), ("with", str(tmp_path / "checkpoints"))):
        train_policy(config, str(tiny_causal_lm), str(length_reward_model), prompts_path, tmp_path / run / "policy",
                     tmp_path / run / "logs", placement=CPU, checkpoint_dir=folder, checkpoint_interval_steps=1)
    assert weight_files(tmp_path / "with" / "policy") == weight_files(tmp_path / "without" / "policy")
    assert scalars(tmp_path / "with" / "logs") == scalars(tmp_path / "without" / "logs")
    assert not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------------- which checkpoint counts


def make_checkpoint(folder: Path, steps: int, marker: str | None, processes: int = 1) -> Path:
    checkpoint = folder / f"checkpoint-{steps}"
    checkpoint.mkdir(parents=True)
    (checkpoint / "optimizer.pt").write_bytes(b"state")
    if marker == "complete":
        mark_complete(checkpoint, {"processes": processes})
    elif marker == "cut short":
        (checkpoint / COMPLETE_MARKER).write_text('{"proces')
    return checkpoint


def test_half_written_checkpoints_are_ignored_and_removed(tmp_path):
    complete = make_checkpoint(tmp_path, 20, "complete")
    make_checkpoint(tmp_path, 5, "complete")
    make_checkpoint(tmp_path, 30, None)  # killed before its marker
    make_checkpoint(tmp_path, 40, "cut short")  # killed while writing it (without the rename)
    assert checkpoint_to_resume(tmp_path, TrainingProcesses()) == complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-20", "checkpoint-5"]
    assert checkpoint_to_resume(tmp_path / "none-yet", TrainingProcesses()) is None


def test_a_checkpoint_of_another_process_count_is_not_resumed(tmp_path, capsys):
    make_checkpoint(tmp_path, 10, "complete", processes=2)
    assert checkpoint_to_resume(tmp_path, TrainingProcesses()) is None
    assert "written by 2 training processes, this run has 1" in capsys.readouterr().out


# ---------------------------------------------------------------- where checkpoints live


def write_data(directory: Path, rows: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "train.jsonl").write_text(rows)
    return directory / "train.jsonl"


def test_the_task_identity_follows_the_inputs_not_where_they_live(tmp_path):
    first = write_data(tmp_path / "run-1" / "prompt_data", '{"prompt": "a"}\n')
    copy = write_data(tmp_path / "run-2" / "prompt_data", '{"prompt": "a"}\n')
    changed = write_data(tmp_path / "run-3" / "prompt_data", '{"prompt": "b"}\n')
    model = tmp_path / "run-1" / "model"
    model.mkdir()
    for name, contents in (("config.json", b"{}"), ("tokenizer.json", b"{}"), ("model.safetensors", b"weights")):
        (model / name).write_bytes(contents)
    settings = dataclasses.asdict(PolicyTuningConfig(steps=10))

    def identity(prompts=first, model_dir=model, version="1.0+abc", **changes):
        return task_identity("tune_policy", version, {**settings, **changes}, {"prompts": prompts, "model": model_dir})

    assert identity() == identity(prompts=copy)  # equal data in another run's folder
    assert identity() != identity(prompts=changed)
    assert identity() != identity(kl_coeff=0.2)
    assert identity() != identity(version="1.0+def")
    assert identity() != task_identity("train_reward_model", "1.0+abc", settings, {"prompts": first, "model": model})
    moved = tmp_path / "run-2" / "model"
    shutil.copytree(model, moved)
    assert identity() == identity(model_dir=moved)
    (moved / "tokenizer.json").write_text('{"changed": true}')
    assert identity() != identity(model_dir=moved)


def test_a_model_by_reference_counts_the_directory_it_names(tmp_path):
    target = tmp_path / "my-model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    write_model_reference(tmp_path / "artifact", str(target), "a local model")
    before = input_identity(tmp_path / "artifact")
    (target / "config.json").write_text('{"hidden_size": 8}')
    assert input_identity(tmp_path / "artifact") != before


def test_large_files_count_by_size_and_modification_time(tmp_path, monkeypatch):
    """Model weights are not read at every task start; a rewritten file still changes the identity."""
    monkeypatch.setattr(checkpoints, "HASHED_FILE_BYTES", 4)
    weights = tmp_path / "model" / "model.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"weights-1")
    before = input_identity(weights.parent)
    written = weights.stat()
    weights.write_bytes(b"weights-2")
    os.utime(weights, ns=(written.st_atime_ns, written.st_mtime_ns))
    assert input_identity(weights.parent) == before  # not read
    os.utime(weights, ns=(written.st_atime_ns, written.st_mtime_ns + 1))
    assert input_identity(weights.parent) != before


def test_checkpoints_live_under_the_named_root_else_under_the_pipeline_root(tmp_path, monkeypatch):
    assert checkpoints_root(str(tmp_path / "mine"), "/runs/artifacts") == tmp_path / "mine"
    assert checkpoints_root("", "/runs/artifacts") == Path("/runs/artifacts/checkpoints")
    assert checkpoints_root("", "") is None
    assert checkpoints_root("", "minio://mlpipeline/v2/artifacts") is None  # no path a step can write
    assert checkpoints_root("", "{{$.pipeline_root}}") is None  # a placeholder the backend did not fill
    monkeypatch.setattr(checkpoints, "GCS_FUSE_ROOT", tmp_path / "no-mount")
    assert checkpoints_root("", "gs://bucket/root") is None
    monkeypatch.setattr(checkpoints, "GCS_FUSE_ROOT", tmp_path)
    assert checkpoints_root("", "gs://bucket/root/") == Path("/gcs/bucket/root/checkpoints")

    data = write_data(tmp_path / "data", '{"prompt": "a"}\n')
    folder = task_checkpoint_dir("", str(tmp_path / "root"), "tune_policy", "1.0", {"seed": 0}, {"prompts": data})
    assert Path(folder).parent == tmp_path / "root" / "checkpoints"
    assert Path(folder).name.startswith("tune_policy-")
    assert task_checkpoint_dir("", "", "tune_policy", "1.0", {"seed": 0}, {"prompts": data}) == ""


def test_checkpoint_intervals():
    assert interval_steps(0, 1410) == 141  # about every 10% of the steps
    assert interval_steps(0, 4) == 1
    assert interval_steps(7, 1410) == 7
    # The reward model checkpoints at logging steps only.
    assert checkpoint_interval(0, 1410, logging_steps=5) == 145
    assert checkpoint_interval(4, 100, logging_steps=5) == 5
    assert checkpoint_interval(10, 100, logging_steps=5) == 10
