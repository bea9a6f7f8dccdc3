"""Training on several GPUs, checked with several CPU processes: the same launcher (torchrun), the
same process group set-up (accelerate, gloo instead of NCCL) and the same DDP code as on GPUs.

The PPO update shared between two processes must move the weights exactly as one process does on
the whole batch; whole training runs of both stages must save one model and one set of logs.
"""

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses, run_in_processes, run_on_every_gpu
from components.common.models import Placement, load_tokenizer
from components.tune_policy.config import PolicyTuningConfig

CPU = Placement(torch.device("cpu"), torch.float32)
PROCESSES = 2
PROMPTS = [
    "summary about my cat [summary]:",
    "the dog ran in the park [summary]:",
    "i was happy today [summary]:",
    "a short post [summary]:",
]


@pytest.fixture(autouse=True)
def launched_processes_import_the_tests(monkeypatch):
    """The launched processes import this module (for `update_on_saved_rollout`) like pytest does."""
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _shard_rows(rollout, processes: TrainingProcesses):
    """This process's rows of a rollout (every per-row tensor and the texts)."""
    share = rollout.size // processes.count
    rows = slice(processes.rank * share, (processes.rank + 1) * share)
    fields = {
        field.name: getattr(rollout, field.name)[rows]
        for field in dataclasses.fields(rollout)
        if isinstance(getattr(rollout, field.name), (torch.Tensor, list))
    }
    return dataclasses.replace(rollout, **fields)


def update_on_saved_rollout(config: PolicyTuningConfig, policy_dir: str, rollout_path: str, output_dir: str) -> dict:
    """Run in each process: this process's share of one update, plus the shared statistics.

    Returns (from the first process) the update's statistics, the rollout statistics and (PPO) the
    whitened returns of the whole batch; saves the updated trainable weights to `output_dir`.
    """
    from components.common.sharding import full_tensor, local_parameter_count
    from components.tune_policy.optimization import build_optimizer, trainable_parameters
    from components.tune_policy.policy_model import load_policy
    from components.tune_policy.training import distribute_policy, rollout_statistics
    from components.tune_policy.ppo_math import masked_whiten
    from components.tune_policy.update import update_policy

    processes = TrainingProcesses.from_environment()
    # DDP: different LoRA initialisations, which DDP must align; FSDP2 keeps each process's shards of its
    # own, so every process starts from the same seed (as train_policy's do)
    torch.manual_seed(config.seed + (0 if config.sharding == "fsdp" else processes.rank))
    policy = load_policy(policy_dir, config, CPU)
    parameters = sum(p.numel() for p in policy.parameters())
    trained, sharded = distribute_policy(policy, config, processes, CPU)
    rollout = _shard_rows(torch.load(rollout_path, weights_only=False), processes)
    whitened = (processes.gather(masked_whiten(rollout.returns, rollout.response_mask, processes.total)).tolist()
                if rollout.returns is not None else None)
    optimizer, scheduler = build_optimizer(policy, config)
    generator = torch.Generator().manual_seed(config.seed)
    update = update_policy(trained, optimizer, scheduler, rollout, config, generator, processes)
    weights = {f"{index}": full_tensor(p.detach()) for index, p in enumerate(trainable_parameters(policy))}
    if processes.is_main:
        torch.save(weights, Path(output_dir) / "weights.pt")
    return {
        "sharded": sharded, "parameters": parameters, "held": local_parameter_count(policy),
        "update": update,
        "rollout": rollout_statistics(rollout, config.kl_coeff, processes),
        "whitened_returns": whitened,
    }


@pytest.mark.parametrize("algorithm, loss_type, lora_rank, sharding, checkpointing", [
    ("ppo", "dapo", 0, "none", False), ("ppo", "dapo", 2, "none", False),
    ("grpo", "grpo", 0, "none", False),  # per-response token means: the normaliser counts every process's rows
    ("rloo", "sequence", 2, "none", False),  # TRL's RLOO: one ratio per response
    # FSDP2: the policy (and value head) sharded; with activation checkpointing, layers recomputed inside it
    ("ppo", "dapo", 0, "fsdp", False), ("grpo", "dapo", 2, "fsdp", True),
])
def test_an_update_shared_by_two_processes_equals_one_process_on_the_whole_batch(
    tmp_path, tiny_causal_lm, algorithm, loss_type, lora_rank, sharding, checkpointing
):
    """Each process holds whole groups of responses (GRPO/RLOO: 2 prompts x 4 responses, one group each).
    Replicated (DDP) or sharded (FSDP2), the update moves the weights as one process does."""
    from components.tune_policy.optimization import trainable_parameters
    from components.tune_policy.policy_model import load_policy
    from components.tune_policy.rollout import collect_rollout

    # One minibatch per epoch, so the order of the rows cannot matter; two forward chunks per
    # process, so gradient accumulation without synchronisation is exercised; two epochs, so the
    # second step starts from weights the first step changed.
    config = PolicyTuningConfig(
        steps=1, algorithm=algorithm, loss_type=loss_type, num_generations=4, batch_size=8, minibatch_size=8,
        forward_batch_size=2, epochs=2, lora_rank=lora_rank, kl_coeff=0.0, max_new_tokens=6, max_prompt_tokens=32,
        base_learning_rate=1e-2, sharding=sharding, activation_checkpointing=checkpointing,
    )
    torch.manual_seed(0)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    with torch.no_grad():  # make EOS likely, so responses end at different lengths
        policy.language_model.get_output_embeddings().weight[tokenizer.eos_token_id] += 3.0

    def words(prompts, responses):
        return torch.tensor([float(len(r.split())) for r in responses])

    formatter = PromptFormatter(tokenizer, "auto", str(tiny_causal_lm))
    prompts = [Prompt(p) for p in PROMPTS] * 2 if algorithm == "ppo" else [Prompt(p) for p in PROMPTS[:2] for _ in range(4)]
    rollout = collect_rollout(policy, None, words, formatter, prompts, config)
    assert len(set(rollout.response_mask.sum(dim=1).tolist())) > 1  # rows of different lengths
    rollout_path = tmp_path / "rollout.pt"
    torch.save(rollout, rollout_path)

    results = {}
    for count in (1, PROCESSES):
        output = tmp_path / f"processes-{count}"
        output.mkdir()
        arguments = dict(policy_dir=str(tiny_causal_lm), rollout_path=str(rollout_path), output_dir=str(output))
        if count == 1:
            result = update_on_saved_rollout(config, **arguments)
        else:
            result = run_in_processes(count, update_on_saved_rollout, config, **arguments)
        results[count] = (result, torch.load(output / "weights.pt"))
    (alone, alone_weights), (shared, shared_weights) = results[1], results[PROCESSES]
    assert (alone["sharded"], shared["sharded"]) == (False, sharding == "fsdp")
    if sharding == "fsdp":  # each process holds about half of the weights (shards are padded to equal sizes)
        assert shared["held"] == pytest.approx(shared["parameters"] / PROCESSES, rel=0.02)
    else:
        assert shared["held"] == shared["parameters"]

    for name, value in alone["update"].items():
        assert shared["update"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    for name, value in alone["rollout"].items():
        assert shared["rollout"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    if algorithm == "ppo":
        assert torch.allclose(torch.tensor(shared["whitened_returns"]), torch.tensor(alone["whitened_returns"]), atol=1e-5)
    else:
        assert rollout.advantages.abs().sum() > 0  # the groups' responses differ: there is something to learn
    torch.manual_seed(config.seed)  # the initial weights of the first process
    initial = dict(enumerate(trainable_parameters(load_policy(str(tiny_causal_lm), config, CPU))))
    assert sorted(alone_weights) == sorted(shared_weights) == sorted(f"{index}" for index in initial)
    # Adam divides by the gradient's root mean square, so for a weight whose gradient is almost 0 the
    # rounding of a different summation order becomes a visible share of a step (up to 1.06e-3 of one
    # for one weight of 1024 in the GRPO case): the weights must agree to a hundredth of one step (the
    # learning rate), where a missed gradient sync or a wrong normaliser moves them by whole steps.
    step_tolerance = 1e-2 * config.learning_rate
    for key, value in alone_weights.items():
        assert torch.allclose(shared_weights[key], value, rtol=1e-4, atol=step_tolerance), key
    assert any(not torch.equal(value, initial[int(key)]) for key, value in alone_weights.items())


def _event_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.rglob("events.out.tfevents.*"))


def test_policy_tuning_in_two_processes_saves_one_policy_and_one_log(tmp_path, tiny_causal_lm, length_reward_model):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForCausalLM

    from components.tune_policy.training import train_policy

    config = PolicyTuningConfig(
        steps=2, batch_size=4, minibatch_size=2, forward_batch_size=2, epochs=1, lora_rank=2, kl_coeff=0.1,
        max_new_tokens=5, max_prompt_tokens=32, base_learning_rate=1e-2,
    )
    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    metrics = run_in_processes(
        PROCESSES, train_policy, config, policy_source=str(tiny_causal_lm),
        reward_source=str(length_reward_model), prompts_path=str(prompts_path), output_dir=str(tmp_path / "policy"),
        log_dir=str(tmp_path / "logs"),
    )
    assert metrics["steps"] == 2
    [events] = _event_files(tmp_path / "logs")  # only the first process writes logs
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("reward")] == [0, 1]
    AutoModelForCausalLM.from_pretrained(str(tmp_path / "policy"))  # a plain model, LoRA merged
    assert not (tmp_path / "policy" / "adapter_config.json").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["logs", "policy", "prompts.jsonl"]  # one of each


@pytest.mark.parametrize("algorithm, lora_rank", [("ppo", 0), ("grpo", 2)])
def test_a_sharded_policy_tuning_run_ends_as_a_replicated_one(tmp_path, tiny_causal_lm, length_reward_model,
                                                              algorithm, lora_rank):
    """FSDP2 against DDP, on the same two processes: PPO training every weight with a full-weight
    reference (policy, value head and reference sharded), and GRPO through LoRA (the adapters merged
    into the saved policy); the policy is gathered whole for each rollout. The same responses are
    sampled, so the metrics and the saved policy agree up to the rounding of the gradients' reduction."""
    from components.common.sharding import FSDP, NONE
    from components.tune_policy.training import train_policy

    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    runs = {}
    for sharding in (NONE, FSDP):
        config = PolicyTuningConfig(
            steps=2, algorithm=algorithm, num_generations=2, batch_size=4, minibatch_size=2, forward_batch_size=2,
            epochs=1, lora_rank=lora_rank, kl_coeff=0.1, max_new_tokens=5, max_prompt_tokens=32,
            base_learning_rate=1e-3 if lora_rank == 0 else 1e-2, sharding=sharding,
        )
        metrics = run_in_processes(
            PROCESSES, train_policy, config, policy_source=str(tiny_causal_lm),
            reward_source=str(length_reward_model), prompts_path=str(prompts_path),
            output_dir=str(tmp_path / sharding / "policy"), log_dir=str(tmp_path / sharding / "logs"),
        )
        runs[sharding] = metrics, load_file(tmp_path / sharding / "policy" / "model.safetensors")
    (replicated, replicated_weights), (sharded, sharded_weights) = runs[NONE], runs[FSDP]
    from test_checkpoints import WALL_CLOCK_METRICS

    for name, value in replicated.items():
        if name not in WALL_CLOCK_METRICS:
            assert sharded[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert sharded_weights.keys() == replicated_weights.keys()
    initial = load_file(tiny_causal_lm / "model.safetensors")
    for name, value in replicated_weights.items():
        assert torch.allclose(sharded_weights[name], value, rtol=1e-4, atol=1e-6), name
    assert any(not torch.equal(value, initial[name]) for name, value in replicated_weights.items() if name in initial)


def test_reward_model_training_in_two_processes_saves_and_evaluates_once(tmp_path, tiny_causal_lm):
    from components.train_reward_model.config import RewardTrainingConfig
    from components.train_reward_model.training import train_reward_model
    from test_train_reward_model import write_pairs

    data = tmp_path / "pairs"
    data.mkdir()
    write_pairs(data / "train.jsonl", 64, seed=0)
    write_pairs(data / "eval.jsonl", 16, seed=1)
    config = RewardTrainingConfig(steps=2, batch_size=8, max_micro_batch_size=2, lora_rank=0, logging_steps=1,
                                  max_prompt_tokens=32, max_response_tokens=16)
    metrics = run_in_processes(
        PROCESSES, train_reward_model, config, base_source=str(tiny_causal_lm),
        train_path=str(data / "train.jsonl"), eval_path=str(data / "eval.jsonl"),
        output_dir=str(tmp_path / "reward"), log_dir=str(tmp_path / "logs"),
    )
    assert metrics["train_steps"] == 2 and metrics["eval_pairs"] == 16
    # evaluated once, on all 16 pairs: the accuracy is what the saved model gives them here
    from components.common.canonical_data import read_preference_pairs
    from components.common.reward_scoring import RewardScorer

    held_out = read_preference_pairs(data / "eval.jsonl")
    scorer = RewardScorer(str(tmp_path / "reward"), Placement(torch.device("cpu"), torch.float32), max_tokens=48)
    prompts = [pair.prompt for pair in held_out]
    chosen = scorer.score(prompts, [pair.chosen for pair in held_out])
    rejected = scorer.score(prompts, [pair.rejected for pair in held_out])
    assert metrics["eval_accuracy"] == pytest.approx(float((chosen > rejected).float().mean()))
    [events] = _event_files(tmp_path / "logs")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "reward"))
    assert model.config.num_labels == 1


def trl_stage_counting_held_weights(config, stage: str, counts_path: str, **kwargs) -> dict:
    """Run in each process: a TRL-trained stage (`stage` names its training function) that writes, in the
    first process, how many of the trained model's weights this process held and how many it has."""
    import importlib

    from components.common.sharding import local_parameter_count
    from components.common.trainer import sharding

    gather = sharding.trained_model

    def counting(trainer, whole_model, is_main):
        if is_main:
            from torch.distributed.fsdp import FSDPModule

            counts = {}
            for name in ("model", "ref_model"):
                module = getattr(trainer, name, None)
                if module is not None:
                    counts[name] = {"held": local_parameter_count(module),
                                    "whole": sum(p.numel() for p in module.parameters()),  # a DTensor's: all of it
                                    "units": sum(isinstance(unit, FSDPModule) for unit in module.modules())}
            Path(counts_path).write_text(json.dumps(counts))
        return gather(trainer, whole_model, is_main)

    sharding.trained_model = counting
    module, function = stage.rsplit(".", 1)
    return getattr(importlib.import_module(module), function)(config, **kwargs)


def _trl_stage_run(stage: str, tmp_path: Path, tiny_causal_lm: Path, lora_rank: int, sharding: str):
    """A TRL-trained stage's config and inputs, on the tiny model, for two processes."""
    from test_train_reward_model import write_pairs

    write_pairs(tmp_path / "train.jsonl", 32, seed=1)
    write_pairs(tmp_path / "eval.jsonl", 8, seed=2)
    if stage == "reward":
        from components.train_reward_model.config import RewardTrainingConfig

        config = RewardTrainingConfig(steps=2, batch_size=8, max_micro_batch_size=2, lora_rank=lora_rank,
                                      learning_rate_multiplier=30.0, logging_steps=1, max_prompt_tokens=32,
                                      max_response_tokens=16, sharding=sharding)
        return ("components.train_reward_model.training.train_reward_model", config,
                dict(base_source=str(tiny_causal_lm), train_path=str(tmp_path / "train.jsonl"),
                     eval_path=str(tmp_path / "eval.jsonl")))
    if stage == "dpo":
        from components.tune_preference.config import PreferenceTuningConfig

        config = PreferenceTuningConfig(steps=2, batch_size=8, max_micro_batch_size=2, lora_rank=lora_rank,
                                        learning_rate_multiplier=300.0, logging_steps=1, max_prompt_tokens=16,
                                        max_response_tokens=8, sharding=sharding)
        return ("components.tune_preference.training.train_preference_policy", config,
                dict(policy_source=str(tiny_causal_lm), train_path=str(tmp_path / "train.jsonl"),
                     eval_path=str(tmp_path / "eval.jsonl")))
    from components.supervised_fine_tuning.config import SupervisedTrainingConfig
    from test_supervised_fine_tuning import taught_rows, write_jsonl

    config = SupervisedTrainingConfig(epochs=2, batch_size=4, max_micro_batch_size=1, learning_rate_multiplier=100.0,
                                      logging_steps=1, sharding=sharding)
    return ("components.supervised_fine_tuning.training.train_supervised", config,
            dict(base_source=str(tiny_causal_lm), rows_path=str(write_jsonl(tmp_path / "sft.jsonl", taught_rows()))))


@pytest.mark.parametrize("stage, lora_rank", [("reward", 4), ("dpo", 0), ("sft", 0)])
def test_a_sharded_trl_stage_ends_as_a_replicated_one_holding_half_the_weights(tmp_path, tiny_causal_lm, capfd,
                                                                              stage, lora_rank):
    """accelerate's FSDP2 (the Trainer's `fsdp` arguments) against DDP, on the same two processes: every
    weight trained (DPO's full-weight reference sharded by TRL too), or LoRA adapters with the frozen
    base sharded. Each process holds about half of the model, and the run ends as the replicated one:
    the same metrics, and the same saved model (gathered whole, adapters merged) up to rounding."""
    from components.common.sharding import FSDP, NONE

    runs = {}
    for sharding in (NONE, FSDP):
        function, config, inputs = _trl_stage_run(stage, tmp_path, tiny_causal_lm, lora_rank, sharding)
        counts = tmp_path / f"{sharding}-counts.json"
        capfd.readouterr()
        metrics = run_in_processes(
            PROCESSES, trl_stage_counting_held_weights, config, stage=function, counts_path=str(counts), **inputs,
            output_dir=str(tmp_path / sharding / "model"), log_dir=str(tmp_path / sharding / "logs"),
        )
        said = "FSDP: the model is sharded between 2 processes" in capfd.readouterr().out
        assert said == (sharding == FSDP)
        runs[sharding] = metrics, json.loads(counts.read_text()), load_file(tmp_path / sharding / "model" / "model.safetensors")
    (replicated, replicated_counts, replicated_weights), (sharded, sharded_counts, sharded_weights) = runs[NONE], runs[FSDP]
    assert sharded_counts.keys() == replicated_counts.keys() == ({"model", "ref_model"} if stage == "dpo" else {"model"})
    for name, counts in replicated_counts.items():  # the policy, and DPO's full-weight reference
        assert counts["held"] == counts["whole"] and counts["units"] == 0
        shares = sharded_counts[name]
        assert shares["whole"] == counts["whole"]
        assert 0.45 * shares["whole"] <= shares["held"] <= 0.55 * shares["whole"], name
        # its decoder layer a unit of its own, and the rest: not one block gathered whole (as TRL shards a reference)
        assert shares["units"] >= 2, name
    for name, value in replicated.items():
        if name != "train_seconds":
            assert sharded[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert sharded_weights.keys() == replicated_weights.keys()
    initial = load_file(tiny_causal_lm / "model.safetensors")
    for name, value in replicated_weights.items():
        assert torch.allclose(sharded_weights[name], value, rtol=1e-4, atol=1e-6), name
    assert any(not torch.equal(value, initial[name]) for name, value in replicated_weights.items() if name in initial)


def test_without_several_gpus_the_function_runs_in_this_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    seen = []

    def record(config, **kwargs):
        seen.append((config, kwargs, os.getpid()))
        return "done"

    assert run_on_every_gpu(record, PolicyTuningConfig(steps=1), value=3) == "done"
    assert seen == [(PolicyTuningConfig(steps=1), {"value": 3}, os.getpid())]


@pytest.mark.parametrize("stage", ["reward model", "policy"])
def test_settings_the_gpus_cannot_share_are_refused_before_any_process_starts(monkeypatch, stage):
    from components.common.errors import UserInputError
    from components.train_reward_model.config import RewardTrainingConfig

    def train(config):
        raise AssertionError("not to be called")

    config = RewardTrainingConfig(steps=1) if stage == "reward model" else PolicyTuningConfig(steps=1, minibatch_size=8)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    with pytest.raises(UserInputError, match="batch_size 64 is not a multiple of the 3 GPUs") as refused:
        run_on_every_gpu(train, config)
    assert ("minibatch_size (ppo_minibatch_size) 8" in str(refused.value)) == (stage == "policy")


# ---------------------------------------------------------------- a step spanning several machines


def test_machines_are_read_from_a_vertex_cluster_spec_or_kubeflow_torchrun_settings():
    from components.common.distributed import Machines

    vertex = {"cluster": {"workerpool0": ["chief-0:2222"], "workerpool1": ["worker-0:2222", "worker-1:2222"]},
              "environment": "cloud", "task": {"type": "workerpool1", "index": 1}}
    machines = Machines.from_environment({"CLUSTER_SPEC": json.dumps(vertex)})
    assert machines == Machines(count=3, rank=2, address="chief-0", port=2222)
    assert machines.launcher_options() == ["--nnodes=3", "--node-rank=2", "--master-addr=chief-0", "--master-port=2222"]
    chief = {**vertex, "task": {"type": "workerpool0", "index": 0}}
    assert Machines.from_environment({"CLUSTER_SPEC": json.dumps(chief)}).rank == 0

    kubeflow = {"PET_NNODES": "2", "PET_NODE_RANK": "1", "PET_MASTER_ADDR": "job-master-0", "PET_MASTER_PORT": "23456",
                "WORLD_SIZE": "2", "RANK": "1"}
    assert Machines.from_environment(kubeflow) == Machines(count=2, rank=1, address="job-master-0", port=23456)
    assert Machines.from_environment({}) == Machines()
    alone = {"cluster": {"workerpool0": ["cmle-training-workerpool0-0:2222"]}, "environment": "cloud"}
    assert Machines.from_environment({"CLUSTER_SPEC": json.dumps(alone)}) == Machines()
    assert Machines().launcher_options() == ["--standalone"]

    with pytest.raises(RuntimeError, match="CLUSTER_SPEC does not describe this task's place"):
        Machines.from_environment({"CLUSTER_SPEC": json.dumps({**vertex, "task": {"type": "workerpool2", "index": 0}})})
    with pytest.raises(RuntimeError, match="PET_NNODES is set but not PET_MASTER_ADDR, PET_MASTER_PORT"):
        Machines.from_environment({"PET_NNODES": "2", "PET_NODE_RANK": "0"})
    with pytest.raises(RuntimeError, match="elastic ranges are not supported"):
        Machines.from_environment({**kubeflow, "PET_NNODES": "1:4"})


def test_a_machine_that_the_platform_numbered_is_not_taken_for_a_launched_process(monkeypatch):
    """PyTorchJob sets WORLD_SIZE and RANK for its machines; only torchrun's processes (LOCAL_RANK) are
    launched ones."""
    from components.common.distributed import launched_processes

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launched_processes() == 1
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched_processes() == 2


def test_a_step_is_refused_when_the_platform_started_it_on_other_machines_than_replica_count(monkeypatch):
    """A template compiled by compile.py run with replica_count 2 (from the Vertex console) starts each step on
    one machine; a job of three machines for replica_count 2 is as wrong. Either is one clear line, before
    any training."""
    from components.common.errors import UserInputError

    def train(config):
        raise AssertionError("not to be called")

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.delenv("CLUSTER_SPEC", raising=False)
    with pytest.raises(UserInputError, match="replica_count is 2 but this step was started on one machine"):
        run_on_every_gpu(train, PolicyTuningConfig(steps=1), replica_count=2)
    three = {"cluster": {"workerpool0": ["c:2222"], "workerpool1": ["w0:2222", "w1:2222"]},
             "task": {"type": "workerpool0", "index": 0}}
    monkeypatch.setenv("CLUSTER_SPEC", json.dumps(three))
    with pytest.raises(UserInputError, match="started on 3 machines .* but replica_count is 2"):
        run_on_every_gpu(train, PolicyTuningConfig(steps=1), replica_count=2)


def across_machines_config() -> PolicyTuningConfig:
    """The GRPO run that the tests of several machines train twice: on several machines, and on one machine
    running as many processes."""
    return PolicyTuningConfig(
        steps=2, algorithm="grpo", num_generations=2, batch_size=4, minibatch_size=2, forward_batch_size=2, epochs=1,
        lora_rank=2, kl_coeff=0.1, max_new_tokens=5, max_prompt_tokens=32, base_learning_rate=1e-2,
    )


def assert_trained_alike(metrics: dict, expected: dict, policy_dir: Path, expected_policy_dir: Path) -> None:
    """Two runs ended with the same metrics (wall-clock ones aside) and saved the same weights, bit for bit."""
    from test_checkpoints import WALL_CLOCK_METRICS

    assert {k: v for k, v in metrics.items() if k not in WALL_CLOCK_METRICS} == {
        k: v for k, v in expected.items() if k not in WALL_CLOCK_METRICS}
    weights, expected_weights = (load_file(folder / "model.safetensors") for folder in (policy_dir, expected_policy_dir))
    assert weights.keys() == expected_weights.keys()
    for name, value in expected_weights.items():
        assert torch.equal(weights[name], value), name


def train_on_this_machine(request_path: str) -> None:
    """One machine's program: the stage's call of `run_on_every_gpu`, placed by the environment."""
    from components.common.distributed import run_on_every_gpu
    from components.tune_policy.training import train_policy

    request = json.loads(Path(request_path).read_text())
    metrics = run_on_every_gpu(train_policy, PolicyTuningConfig(**request["config"]), replica_count=request["machines"],
                               **request["kwargs"])
    Path(request["metrics"]).write_text(json.dumps(metrics))


def test_two_machines_train_as_one_machine_with_as_many_processes(tmp_path, tiny_causal_lm, length_reward_model):
    """Two "machines" on 127.0.0.1, each a program placed by a Vertex CLUSTER_SPEC (one process each, as a
    machine without GPUs runs), train a GRPO step with exactly the result of one machine running two
    processes; only the first machine writes outputs, the second ends with status 0."""
    import socket
    import subprocess
    import sys

    from components.tune_policy.training import train_policy

    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = across_machines_config()
    sources = dict(policy_source=str(tiny_causal_lm), reward_source=str(length_reward_model),
                   prompts_path=str(prompts_path))
    one_machine = run_in_processes(PROCESSES, train_policy, config, **sources,
                                   output_dir=str(tmp_path / "one" / "policy"), log_dir=str(tmp_path / "one" / "logs"))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = {"workerpool0": [f"127.0.0.1:{port}"], "workerpool1": [f"127.0.0.1:{port + 1}"]}
    programs = []
    for pool in ("workerpool0", "workerpool1"):
        request = tmp_path / f"{pool}.json"
        request.write_text(json.dumps({
            "config": dataclasses.asdict(config), "metrics": str(tmp_path / f"{pool}-metrics.json"), "machines": 2,
            "kwargs": {**sources, "output_dir": str(tmp_path / "two" / "policy"), "log_dir": str(tmp_path / "two" / "logs")},
        }))
        environment = {**os.environ, "CLUSTER_SPEC": json.dumps({"cluster": cluster, "task": {"type": pool, "index": 0}})}
        programs.append(subprocess.Popen(
            [sys.executable, "-c", f"from test_distributed_training import train_on_this_machine; "
                                   f"train_on_this_machine({str(request)!r})"], env=environment))
    assert [program.wait(timeout=600) for program in programs] == [0, 0]

    two_machines = json.loads((tmp_path / "workerpool0-metrics.json").read_text())
    assert not (tmp_path / "workerpool1-metrics.json").exists()  # the second machine wrote nothing
    assert_trained_alike(two_machines, one_machine, tmp_path / "two" / "policy", tmp_path / "one" / "policy")
