"""A training step on several machines of a Kubernetes cluster (components/common/train_jobs.py): the step's pod
stages its files on a shared volume and creates a Kubeflow Trainer TrainJob, whose nodes train together; checked
against a fake Kubernetes API whose controller runs each node as a local process (tests/fakes/kubernetes_trainer.py).
"""

import json
from pathlib import Path

import pytest

from components.common.distributed import run_in_processes, run_on_every_gpu
from components.common.train_jobs import TRAIN_JOB_VARIABLE, TrainJobSettings, stage_arguments
from components.tune_policy.config import PolicyTuningConfig
from components.tune_policy.training import train_policy
from fakes.kubernetes_trainer import FakeKubernetesTrainer
from test_distributed_training import PROMPTS, across_machines_config, assert_trained_alike

REPO = Path(__file__).resolve().parents[1]
CLAIM = "rlhf-shared"


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "pipeline-runner", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "pipeline-runner"}}],
    }))
    return path


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """The fake cluster, its volume (a folder), and the step's environment as the Kubeflow flavour sets it."""
    volume = tmp_path / "volume"
    volume.mkdir()
    fake = FakeKubernetesTrainer({CLAIM: volume}, cwd=REPO)
    with fake:
        monkeypatch.setenv("KUBECONFIG", str(_kubeconfig(tmp_path / "kubeconfig", fake.url)))
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        for variable in ("CLUSTER_SPEC", "PET_NNODES", "LOCAL_RANK"):
            monkeypatch.delenv(variable, raising=False)
        settings = TrainJobSettings(image="rlhf-pipeline:test", claim=CLAIM, mount_path=str(volume),
                                    resources={"cpu": "1"}, namespace="team-a", poll_seconds=0.2)
        monkeypatch.setenv(TRAIN_JOB_VARIABLE, settings.as_environment())
        yield fake, volume


def test_a_train_job_of_two_nodes_trains_as_one_machine_with_as_many_processes(
        cluster, tmp_path, monkeypatch, tiny_causal_lm, length_reward_model):
    """The step's call of `run_on_every_gpu` with replica_count 2, in a pod the Kubeflow flavour set up, creates a
    TrainJob of two nodes that mount the shared volume; they train a GRPO step with exactly the result of one
    machine running two processes, the outputs come back to the step's own folders, and the job and its files
    are cleaned up."""
    fake, volume = cluster
    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    sources = dict(policy_source=str(tiny_causal_lm), reward_source=str(length_reward_model),
                   prompts_path=str(prompts_path))
    one_machine = run_in_processes(2, train_policy, across_machines_config(), **sources,
                                   output_dir=str(tmp_path / "one" / "policy"), log_dir=str(tmp_path / "one" / "logs"))

    output_dir = tmp_path / "two" / "policy"
    output_dir.mkdir(parents=True)  # as the component makes its output artifact's folder
    monkeypatch.setenv("RLHF_POD_NAME", "launcher-pod")  # as the Kubeflow flavour's downward API sets them
    monkeypatch.setenv("RLHF_POD_UID", "uid-of-the-launcher")
    two_nodes = run_on_every_gpu(train_policy, across_machines_config(), replica_count=2, **sources,
                                 output_dir=str(output_dir), log_dir=str(tmp_path / "two" / "logs"))

    assert_trained_alike(two_nodes, one_machine, output_dir, tmp_path / "one" / "policy")
    assert list((tmp_path / "two" / "logs").iterdir())  # the TensorBoard logs came back too

    [create] = fake.find("POST", r".*/namespaces/team-a/trainjobs")
    assert create.query["fieldValidation"] == ["Strict"]  # a field this Trainer does not know fails the request
    created = create.json()
    trainer = created["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["image"], trainer["resourcesPerNode"]) == (
        2, "rlhf-pipeline:test", {"limits": {"cpu": "1"}})
    assert created["spec"]["runtimeRef"] == {"name": "torch-distributed"}
    assert created["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "launcher-pod", "uid": "uid-of-the-launcher"}]
    [node] = created["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["spec"]["volumes"]
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert fake.deleted == [created["metadata"]["name"]] and not fake.jobs
    assert list((volume / "train-jobs").iterdir()) == []  # the staged files are gone


def test_a_failed_train_job_fails_the_step_with_where_to_look(cluster, tmp_path, tiny_causal_lm):
    """A node that fails (here: prompts that do not exist on it) fails the job; the step's error names the job and
    how to read its nodes' logs, the job is kept for them, the staged files leave the volume and what the nodes
    wrote in an output folder (checkpoints) comes back."""
    fake, volume = cluster
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "step-2").write_text("from an earlier try")
    with pytest.raises(RuntimeError, match=r"TrainJob team-a/rlhf-\w+ failed: nodes exited with .*kubectl logs -n team-a"):
        run_on_every_gpu(train_policy, across_machines_config(), replica_count=2, policy_source=str(tiny_causal_lm),
                         reward_source="", prompts_path="/nowhere/prompts.jsonl", output_dir=str(tmp_path / "out"),
                         log_dir=str(tmp_path / "logs"), checkpoint_dir=str(checkpoints))
    assert len(fake.jobs) == 1 and not fake.deleted
    assert list((volume / "train-jobs").iterdir()) == []
    assert (checkpoints / "step-2").read_text() == "from an earlier try"


def test_nodes_that_would_not_see_the_volume_fail_the_job(cluster, tmp_path, monkeypatch):
    """A claim mounted elsewhere than where the launcher staged the files: the nodes find no request."""
    fake, volume = cluster
    settings = TrainJobSettings(image="rlhf-pipeline:test", claim="other-claim", mount_path=str(volume),
                                namespace="team-a", poll_seconds=0.2)
    monkeypatch.setenv(TRAIN_JOB_VARIABLE, settings.as_environment())
    with pytest.raises(RuntimeError, match='failed: persistentvolumeclaim "other-claim" not found'):
        run_on_every_gpu(train_policy, across_machines_config(), replica_count=2, output_dir=str(tmp_path / "out"))


def test_a_runtime_the_cluster_lacks_is_refused_with_the_clusters_reason(cluster, tmp_path, monkeypatch):
    fake, volume = cluster
    settings = TrainJobSettings(image="rlhf-pipeline:test", claim=CLAIM, mount_path=str(volume),
                                runtime="deepspeed-distributed", namespace="team-a")
    monkeypatch.setenv(TRAIN_JOB_VARIABLE, settings.as_environment())
    with pytest.raises(RuntimeError, match="Kubernetes refused the TrainJob team-a/.*422.*'deepspeed-distributed' not "
                                           "found.*Trainer 2.2 or later.*needs to create trainjobs"):
        run_on_every_gpu(train_policy, across_machines_config(), replica_count=2, output_dir=str(tmp_path / "out"))
    assert list((volume / "train-jobs").iterdir()) == []  # nothing left on the volume


def test_inputs_are_copied_to_the_volume_outputs_made_there_and_other_values_kept(tmp_path):
    volume, local = tmp_path / "volume", tmp_path / "local"
    (local / "model").mkdir(parents=True)
    (local / "model" / "config.json").write_text("{}")
    (local / "prompts.jsonl").write_text("{}\n")
    (local / "resume").mkdir()
    (local / "resume" / "step-3").write_text("state")
    (volume / "checkpoints").mkdir(parents=True)
    settings = TrainJobSettings(image="i", claim=CLAIM, mount_path=str(volume))
    folder = volume / "train-jobs" / "job"
    staged, outputs = stage_arguments({
        "policy_source": str(local / "model"), "prompts_path": str(local / "prompts.jsonl"),
        "reward_source": "HuggingFaceTB/SmolLM2-135M-Instruct", "output_dir": str(local / "out"),
        "checkpoint_dir": str(local / "resume"), "log_dir": str(volume / "checkpoints"), "steps": 3, "eval_path": "",
    }, folder, settings)
    assert staged == {
        "policy_source": str(folder / "policy_source"), "prompts_path": str(folder / "prompts_path" / "prompts.jsonl"),
        "reward_source": "HuggingFaceTB/SmolLM2-135M-Instruct", "output_dir": str(folder / "output_dir"),
        "checkpoint_dir": str(folder / "checkpoint_dir"), "log_dir": str(volume / "checkpoints"), "steps": 3,
        "eval_path": "",
    }
    assert (folder / "policy_source" / "config.json").read_text() == "{}"
    assert (folder / "checkpoint_dir" / "step-3").read_text() == "state"  # a retry resumes on the nodes
    assert (folder / "output_dir").is_dir()
    assert outputs == {"output_dir": str(local / "out"), "checkpoint_dir": str(local / "resume")}


def test_settings_the_nodes_cannot_share_are_refused_before_the_job_is_created(cluster, tmp_path, monkeypatch):
    """2 nodes of 2 GPUs are 4 processes: a batch of 6 responses cannot be split between them."""
    from components.common.errors import UserInputError

    fake, volume = cluster
    settings = TrainJobSettings(image="rlhf-pipeline:test", claim=CLAIM, mount_path=str(volume),
                                resources={"nvidia.com/gpu": "2"}, namespace="team-a")
    monkeypatch.setenv(TRAIN_JOB_VARIABLE, settings.as_environment())
    config = PolicyTuningConfig(steps=1, algorithm="grpo", num_generations=2, batch_size=6, minibatch_size=6)
    with pytest.raises(UserInputError, match="batch_size 6 is not a multiple of the 4 GPUs"):
        run_on_every_gpu(train_policy, config, replica_count=2, output_dir=str(tmp_path / "out"))
    assert fake.requests == []
