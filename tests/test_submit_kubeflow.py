"""`rlhf-pipeline submit --target kfp` run as a user runs it, against a Kubeflow Pipelines v2beta1
REST fake on 127.0.0.1 (healthz, experiments, runs)."""

import json

import pytest
import yaml

from fakes.cloud import client_env, run_cli
from fakes.kubeflow import FakeKubeflow
from fakes.templates import compile_rlhf_template


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return compile_rlhf_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"preference_dataset": "gs://data/prefs.jsonl",
                                    "prompt_dataset": "gs://data/prompts.jsonl",
                                    "large_model_reference": "gpt2", "kl_coeff": 0.05}))
    return path


def test_run_is_created_in_a_new_experiment_and_followed_to_success(tmp_path, template, params):
    states = ("PENDING", "RUNNING", "RUNNING", "SUCCEEDED")
    with FakeKubeflow(run_states=states) as kubeflow:
        result = run_cli(["submit", "--target", "kfp", "--host", kubeflow.url, "--template", str(template),
                          "--params", str(params), "--set", "seed=7", "--skip-data-check",
                          "--namespace", "team-rlhf", "--experiment", "rlhf-trials", "--display-name", "trial 1",
                          "--pipeline-root", "s3://artifacts/rlhf", "--service-account", "pipeline-runner",
                          "--no-cache", "--wait", "--poll-interval", "0.01"], client_env(tmp_path / "home"))
        assert result.returncode == 0, result.stderr
        [lookup] = kubeflow.find("GET", r"/apis/v2beta1/experiments")
        assert lookup.query["namespace"] == ["team-rlhf"]
        assert json.loads(lookup.query["filter"][0])["predicates"][0]["stringValue"] == "rlhf-trials"
        [new_experiment] = kubeflow.find("POST", r"/apis/v2beta1/experiments")
        [create] = kubeflow.find("POST", r"/apis/v2beta1/runs")
        run_id, url = next(iter(kubeflow.runs)), kubeflow.url

    assert new_experiment.json()["display_name"] == "rlhf-trials"
    assert new_experiment.json()["namespace"] == "team-rlhf"
    body = create.json()
    experiment_id = next(iter(kubeflow.experiments))
    assert body["experiment_id"] == experiment_id
    assert body["display_name"] == "trial 1"
    assert body["service_account"] == "pipeline-runner"
    assert body["runtime_config"] == {
        "pipeline_root": "s3://artifacts/rlhf",
        "parameters": {"preference_dataset": "gs://data/prefs.jsonl", "prompt_dataset": "gs://data/prompts.jsonl",
                       "large_model_reference": "gpt2", "kl_coeff": 0.05, "seed": 7,
                       "accelerator_type": "nvidia.com/gpu"},
    }
    compiled = yaml.safe_load(template.read_text())
    assert body["pipeline_spec"]["deploymentSpec"] == compiled["deploymentSpec"]
    assert body["pipeline_spec"]["root"]["inputDefinitions"] == compiled["root"]["inputDefinitions"]
    assert {t["cachingOptions"].get("enableCache", False)
            for t in body["pipeline_spec"]["root"]["dag"]["tasks"].values()} == {False}
    assert f"submitted: run {run_id}" in result.stdout
    assert f"console: {url}/#/runs/details/{run_id}" in result.stdout
    assert "RUNNING" in result.stdout and "the job succeeded (SUCCEEDED)" in result.stdout
    assert "accelerator_type GPU -> nvidia.com/gpu" in result.stderr


def test_an_existing_experiment_is_reused_and_a_failed_run_exits_non_zero(tmp_path, template, params):
    with FakeKubeflow(run_states=("RUNNING", "FAILED")) as kubeflow:
        existing = kubeflow.add_experiment("Default")
        result = run_cli(["submit", "--target", "kfp", "--host", kubeflow.url, "--template", str(template),
                          "--params", str(params), "--skip-data-check", "--wait", "--poll-interval", "0.01"],
                         client_env(tmp_path / "home"))
        assert result.returncode == 1, result.stderr
        assert kubeflow.find("POST", r"/apis/v2beta1/experiments") == []
        [create] = kubeflow.find("POST", r"/apis/v2beta1/runs")
    assert create.json()["experiment_id"] == existing["experiment_id"]
    assert "pipeline_root" not in create.json()["runtime_config"]
    assert "the job ended in FAILED: task train-reward-model failed" in result.stdout


def test_vertex_only_options_are_refused_for_kubeflow(tmp_path, template, params):
    with FakeKubeflow() as kubeflow:
        result = run_cli(["submit", "--target", "kfp", "--host", kubeflow.url, "--template", str(template),
                          "--params", str(params), "--labels", "a=b", "--set", "accelerator_type=NVIDIA_L4"],
                         client_env(tmp_path / "home"))
        assert result.returncode == 2
        assert kubeflow.requests == []
    assert result.stderr.strip() == "error: --labels do(es) not apply to --target kfp"


TRAINING_EXECUTORS = ("exec-supervised-fine-tuning", "exec-train-reward-model", "exec-tune-policy",
                      "exec-tune-preference")


def test_training_steps_span_replica_count_nodes_as_train_jobs_sharing_a_volume(tmp_path, template, params):
    """replica_count 2 with --shared-volume: the run sent carries the pipeline compiled again, each training step
    mounting the claim and told how to launch a TrainJob of two nodes with the step's GPUs, CPU and memory in the
    template's image (components/common/train_jobs.py), the launcher itself without a GPU; other steps unchanged.
    Without --shared-volume the submission is refused before any request."""
    from components.common.train_jobs import TRAIN_JOB_VARIABLE

    arguments = ["submit", "--target", "kfp", "--template", str(template), "--params", str(params),
                 "--set", "replica_count=2", "--set", "accelerator_count=4", "--set", "batch_size=16",
                 "--set", "ppo_minibatch_size=16", "--skip-data-check"]
    with FakeKubeflow() as kubeflow:
        refused = run_cli([*arguments, "--host", kubeflow.url], client_env(tmp_path / "home"))
        assert refused.returncode == 2 and kubeflow.requests == []
        result = run_cli([*arguments, "--host", kubeflow.url, "--shared-volume", "rlhf-files",
                          "--training-runtime", "torch-cuda"], client_env(tmp_path / "home"))
        assert result.returncode == 0, result.stderr
        [create] = kubeflow.find("POST", r"/apis/v2beta1/runs")
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: replica_count 2: on Kubeflow the training steps run as Kubeflow Trainer TrainJobs whose nodes share "
        "the step's files on a ReadWriteMany PersistentVolumeClaim; name it with --shared-volume CLAIM")
    assert ("the training steps run on 2 nodes of a Kubeflow Trainer TrainJob (runtime torch-cuda; nvidia.com/gpu 4, "
            "cpu 8, memory 32G each), sharing files on the volume rlhf-files") in result.stderr
    sent = create.json()["pipeline_spec"]
    spec, platform = sent["pipeline_spec"], sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]
    assert sorted(platform["executors"]) == list(TRAINING_EXECUTORS)
    compiled = yaml.safe_load(template.read_text())
    image = compiled["deploymentSpec"]["executors"]["exec-tune-policy"]["container"]["image"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        if name not in TRAINING_EXECUTORS:
            assert container == compiled["deploymentSpec"]["executors"][name]["container"], name
            continue
        [mount] = platform["executors"][name]["pvcMount"]
        assert (mount["constant"], mount["mountPath"]) == ("rlhf-files", "/mnt/rlhf-shared")
        assert platform["executors"][name]["fieldPathAsEnv"] == [  # the launcher's pod owns its TrainJob
            {"name": "RLHF_POD_NAME", "fieldPath": "metadata.name"}, {"name": "RLHF_POD_UID", "fieldPath": "metadata.uid"}]
        [variable] = container["env"]
        assert variable["name"] == TRAIN_JOB_VARIABLE
        assert json.loads(variable["value"]) == {
            "image": image, "claim": "rlhf-files", "mount_path": "/mnt/rlhf-shared", "runtime": "torch-cuda",
            "resources": {"nvidia.com/gpu": "4", "cpu": "8", "memory": "32G"}, "namespace": "", "poll_seconds": 15.0}
        assert "accelerator" not in container["resources"]  # the nodes take the GPUs, not the launcher
        assert container["command"] == compiled["deploymentSpec"]["executors"][name]["container"]["command"]
    assert create.json()["runtime_config"]["parameters"]["replica_count"] == 2


def test_a_shared_volume_without_several_machines_is_refused(tmp_path, template, params):
    with FakeKubeflow() as kubeflow:
        result = run_cli(["submit", "--target", "kfp", "--host", kubeflow.url, "--template", str(template),
                          "--params", str(params), "--skip-data-check", "--shared-volume", "rlhf-files"],
                         client_env(tmp_path / "home"))
        assert result.returncode == 2 and kubeflow.requests == []
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --shared-volume and --training-runtime are for training steps on several machines; replica_count is 1")
