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
