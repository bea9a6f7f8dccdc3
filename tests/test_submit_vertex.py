"""`rlhf-pipeline submit --target vertex` run as a user runs it, against real-protocol fakes on
127.0.0.1: the GCE metadata server (Application Default Credentials), the Cloud Storage JSON API,
Cloud Resource Manager over gRPC and the Vertex AI REST API."""

import json

import pytest
import yaml

from fakes.cloud import LOCATION, PROJECT_ID, google_cloud_fakes, run_cli
from fakes.metadata_server import ACCESS_TOKEN
from fakes.templates import COURSE_PARAMETER_VALUES, REGISTRY_IMAGE, add_course_datasets, compile_rlhf_template

SERVICE_ACCOUNT = "runner@fake-project.iam.gserviceaccount.com"
NETWORK = "projects/123456789012/global/networks/rlhf-vpc"
KMS_KEY = "projects/fake-project/locations/us-central1/keyRings/rlhf/cryptoKeys/models"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return compile_rlhf_template(tmp_path_factory.mktemp("template"))


# The course's values with a batch whose RL step fits the default A100 (40 GB): at Vertex's batch of 64 and
# our engine's forward batch of 16, the 7B policy's update needs about 86 GiB (`rlhf-pipeline plan`), and
# submit refuses it (tests/test_memory_plan.py).
COURSE_VALUES_THAT_FIT = {**COURSE_PARAMETER_VALUES, "batch_size": 2, "ppo_minibatch_size": 2}


@pytest.fixture
def course_file(tmp_path):
    path = tmp_path / "course_parameter_values.json"
    path.write_text(json.dumps(COURSE_VALUES_THAT_FIT, indent=1))
    return path


def _submit_args(template, fakes, *extra):
    return ["submit", "--target", "vertex", "--template", str(template), "--project", PROJECT_ID,
            "--location", LOCATION, "--pipeline-root", "gs://rlhf-runs/pipelines",
            "--api-endpoint", fakes.vertex.url, *extra]


def test_course_parameters_are_submitted_with_every_setting_and_followed_to_the_end(tmp_path, template, course_file):
    states = ("PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING", "PIPELINE_STATE_RUNNING",
              "PIPELINE_STATE_RUNNING", "PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED")
    with google_cloud_fakes(tmp_path / "home", pipeline_states=states) as fakes:
        fakes.gcs.add_bucket("rlhf-runs")
        add_course_datasets(fakes.gcs)
        report_uri = "gs://rlhf-runs/pipelines/123/evaluate/report.html"
        fakes.vertex.task_artifacts["evaluate"] = {"report": {"uri": report_uri, "schemaTitle": "system.HTML"}}
        result = run_cli(_submit_args(
            template, fakes, "--params", str(course_file), "--set", "policy_lora_rank=2",
            "--service-account", SERVICE_ACCOUNT, "--network", NETWORK, "--labels", "team=rlhf,stage=course",
            "--experiment", "course-run", "--no-cache", "--encryption-key", KMS_KEY,
            "--display-name", "course rlhf", "--wait", "--poll-interval", "0.01"), fakes.env())

        assert result.returncode == 0, result.stderr
        [create] = fakes.vertex.find("POST", r"/v1/projects/fake-project/locations/us-central1/pipelineJobs")
        job_id = create.query["pipelineJobId"][0]
        body = create.json()
        # every Vertex request carries the token the metadata server handed out (ADC, no test switch)
        assert {r.headers["authorization"] for r in fakes.vertex.requests} == {f"Bearer {ACCESS_TOKEN}"}
        assert fakes.metadata.find("GET", r"/computeMetadata/v1/instance/service-accounts/default/token")

    compiled = yaml.safe_load(template.read_text())
    assert body["pipelineSpec"]["pipelineInfo"] == compiled["pipelineInfo"]
    assert body["pipelineSpec"]["deploymentSpec"] == compiled["deploymentSpec"]
    assert {t["cachingOptions"].get("enableCache", False) for t in body["pipelineSpec"]["root"]["dag"]["tasks"].values()} == {False}
    sent = dict(body["runtimeConfig"]["parameterValues"])
    # the data stages' cache keys see the datasets' contents (object generations for gs://)
    fingerprints = [sent.pop(name) for name in ("preference_data_fingerprint", "prompt_data_fingerprint", "sft_data_fingerprint")]
    assert all(fingerprint.startswith("sha256:") for fingerprint in fingerprints)
    assert sent == {**COURSE_VALUES_THAT_FIT, "policy_lora_rank": 2, "accelerator_type": "NVIDIA_TESLA_A100",
                    "encryption_spec_key_name": KMS_KEY}
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://rlhf-runs/pipelines"
    assert body["serviceAccount"] == SERVICE_ACCOUNT
    assert body["network"] == NETWORK
    assert body["labels"] == {"team": "rlhf", "stage": "course"}
    assert body["encryptionSpec"] == {"kmsKeyName": KMS_KEY}
    assert body["displayName"] == "course rlhf"
    # the experiment was created and the job's run context filed under it
    assert fakes.vertex.contexts["course-run"]["schemaTitle"] == "system.Experiment"
    assert fakes.vertex.contexts["course-run"]["childContexts"] == [fakes.vertex.contexts[job_id]["name"]]
    # the SDK's pipeline-root bucket check: bucket read, owner project looked up over gRPC
    assert fakes.gcs.find("GET", r"/storage/v1/b/rlhf-runs")
    assert fakes.resource_manager.requests == [f"projects/{PROJECT_ID}"]
    # the datasets were read before the job was created
    assert all(r.path.startswith("/download/") or r.path.startswith("/storage/") for r in fakes.gcs.requests)
    assert fakes.gcs.find("GET", r"/download/storage/v1/b/vertex-ai/o/.*reddit_tfds/val/part-00000.jsonl")

    out = result.stdout
    assert f"submitted: projects/123456789012/locations/{LOCATION}/pipelineJobs/{job_id}" in out
    assert (f"console: https://console.cloud.google.com/vertex-ai/locations/{LOCATION}/pipelines/runs/{job_id}"
            f"?project={PROJECT_ID}") in out
    assert "accelerator_type GPU -> NVIDIA_TESLA_A100" in result.stderr
    assert "checked preference_dataset: 1 file(s), first rows read as preference rows" in result.stderr
    assert "PIPELINE_STATE_RUNNING" in out and "the job succeeded (PIPELINE_STATE_SUCCEEDED)" in out
    progress = [line for line in out.splitlines() if "tasks finished" in line]
    tasks = len(yaml.safe_load(template.read_text())["root"]["dag"]["tasks"])
    assert progress[-1].endswith(f"PIPELINE_STATE_SUCCEEDED: {tasks}/{tasks} tasks finished")
    assert len(progress) >= 3  # the task count moved while the job ran
    assert f"evaluate report: {report_uri}" in out


def test_a_failed_job_exits_non_zero_and_a_missing_bucket_is_created(tmp_path, template, course_file):
    states = ("PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING", "PIPELINE_STATE_FAILED")
    with google_cloud_fakes(tmp_path / "home", pipeline_states=states) as fakes:
        add_course_datasets(fakes.gcs)
        result = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--set",
                                      "accelerator_type=NVIDIA_A100_80GB", "--wait", "--poll-interval", "0.01"), fakes.env())
        assert result.returncode == 1, result.stderr
        assert "the job ended in PIPELINE_STATE_FAILED: The DAG failed because some tasks failed." in result.stdout
        [create] = fakes.vertex.find("POST", r"/v1/projects/fake-project/locations/us-central1/pipelineJobs")
        assert create.json()["runtimeConfig"]["parameterValues"]["accelerator_type"] == "NVIDIA_A100_80GB"
        assert "serviceAccount" not in create.json()
        # no pipeline-root bucket: the SDK creates it and grants the default compute account access,
        # whose number it looks up in Resource Manager
        [insert] = fakes.gcs.find("POST", r"/storage/v1/b")
        assert insert.json()["name"] == "rlhf-runs" and insert.query["project"] == [PROJECT_ID]
        [policy] = fakes.gcs.find("PUT", r"/storage/v1/b/rlhf-runs/iam")
        members = {m for b in policy.json()["bindings"] for m in b["members"]}
        assert members == {"serviceAccount:123456789012-compute@developer.gserviceaccount.com"}


def test_dry_run_prints_the_request_and_sends_nothing(tmp_path, template, course_file):
    with google_cloud_fakes(tmp_path / "home") as fakes:
        result = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--skip-data-check",
                                      "--labels", "team=rlhf", "--service-account", SERVICE_ACCOUNT,
                                      "--dry-run"), fakes.env())
        assert result.returncode == 0, result.stderr
        assert fakes.all_requests() == [] and fakes.resource_manager.requests == []
    request = json.loads(result.stdout)
    assert request["method"] == "POST"
    assert request["url"].startswith(f"projects/{PROJECT_ID}/locations/{LOCATION}/pipelineJobs?pipelineJobId=rlhf-pipeline-")
    job = request["pipelineJob"]
    assert job["runtimeConfig"]["parameterValues"]["large_model_reference"] == "llama-2-7b"
    assert job["serviceAccount"] == SERVICE_ACCOUNT and job["labels"] == {"team": "rlhf"}
    assert job["pipelineSpec"]["tasks"] == sorted(yaml.safe_load(template.read_text())["root"]["dag"]["tasks"])


def test_an_invalid_parameter_file_is_refused_in_one_line_before_any_request(tmp_path, template):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**COURSE_PARAMETER_VALUES, "reward_model_train_steps": "1410",
                                   "kl_coeff": -0.1, "kl_coef": 0.2}))
    with google_cloud_fakes(tmp_path / "home") as fakes:
        result = run_cli(_submit_args(template, fakes, "--params", str(bad)), fakes.env())
        assert result.returncode == 2
        assert fakes.all_requests() == [] and fakes.resource_manager.requests == []
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: pipeline parameters: 3 problems: ")
    assert "reward_model_train_steps: expected an integer, got the string '1410'" in line
    assert "kl_coeff: -0.1 is not allowed: must be at least 0" in line
    assert "unknown parameter 'kl_coef' (did you mean 'kl_coeff'?)" in line


def test_a_reward_function_the_job_cannot_load_is_refused_unless_the_data_check_is_skipped(tmp_path, template,
                                                                                          course_file):
    with google_cloud_fakes(tmp_path / "home") as fakes:
        add_course_datasets(fakes.gcs)
        result = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--set",
                                      "reward_function=/gcs/rlhf-runs/rewards.py:score"), fakes.env())
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == (
            "error: reward_function: gs://rlhf-runs/rewards.py does not exist; upload the file there")
        assert fakes.vertex.requests == []
        result = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--set",
                                      "reward_function=/opt/rewards.py:score", "--skip-data-check", "--dry-run"),
                         fakes.env())
        assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pipelineJob"]["runtimeConfig"]["parameterValues"]["reward_function"] == (
        "/opt/rewards.py:score")


def test_training_steps_span_replica_count_machines_as_custom_jobs_with_worker_pools(tmp_path, template, course_file):
    """replica_count 2 on 8 x A100 80GB: the job sent carries every training step as a Vertex custom job whose
    worker pools are a primary machine and one worker of the matching machine type, each running the step's
    own program in the template's image; the other steps are untouched."""
    with google_cloud_fakes(tmp_path / "home") as fakes:
        fakes.gcs.add_bucket("rlhf-runs")
        add_course_datasets(fakes.gcs)
        result = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--set", "replica_count=2",
                                      "--set", "accelerator_type=NVIDIA_A100_80GB", "--set", "accelerator_count=8",
                                      "--set", "batch_size=16", "--set", "ppo_minibatch_size=16"), fakes.env())
        assert result.returncode == 0, result.stderr
        [create] = fakes.vertex.find("POST", r"/v1/projects/fake-project/locations/us-central1/pipelineJobs")
    assert "the training steps run as Vertex AI custom jobs on 2 x a2-ultragpu-8g (8 x NVIDIA_A100_80GB each)" in result.stderr
    body = create.json()
    assert body["runtimeConfig"]["parameterValues"]["replica_count"] == 2
    spec = body["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    training = {"comp-supervised-fine-tuning": "supervised_fine_tuning", "comp-train-reward-model": "train_reward_model",
                "comp-tune-policy": "tune_policy", "comp-tune-preference": "tune_preference"}
    for component, function in training.items():
        pools = spec["components"][component]["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
        assert [pool["replica_count"] for pool in pools] == [1, 1]
        for pool in pools:
            assert pool["machine_spec"] == {"machine_type": "a2-ultragpu-8g", "accelerator_type": "NVIDIA_A100_80GB",
                                            "accelerator_count": 8}
            assert pool["container_spec"]["image_uri"] == REGISTRY_IMAGE
            assert pool["container_spec"]["args"][-2:] == ["--function_to_execute", function]
        executor = executors[spec["components"][component]["executorLabel"]]["container"]
        assert executor["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components:")
    evaluate = executors["exec-evaluate"]["container"]
    assert evaluate["image"] == REGISTRY_IMAGE and "accelerator" in evaluate["resources"]

    # --dry-run shows each training step's machines
    with google_cloud_fakes(tmp_path / "home-dry") as fakes:
        dry = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--skip-data-check", "--dry-run",
                                   "--set", "replica_count=2", "--set", "accelerator_type=NVIDIA_A100_80GB",
                                   "--set", "accelerator_count=8", "--set", "batch_size=16",
                                   "--set", "ppo_minibatch_size=16"), fakes.env())
    assert dry.returncode == 0, dry.stderr
    machine = {"machine_type": "a2-ultragpu-8g", "accelerator_type": "NVIDIA_A100_80GB", "accelerator_count": 8}
    assert json.loads(dry.stdout)["pipelineJob"]["pipelineSpec"]["workerPools"] == {
        component: [{"replica_count": 1, **machine}, {"replica_count": 1, **machine}] for component in training}



def test_a_machine_type_vertex_does_not_have_is_refused_with_the_counts_it_has(tmp_path, template, course_file):
    with google_cloud_fakes(tmp_path / "home") as fakes:
        result = run_cli(_submit_args(template, fakes, "--params", str(course_file), "--skip-data-check",
                                      "--set", "replica_count=2", "--set", "accelerator_type=NVIDIA_H100_80GB"),
                         fakes.env())
        assert fakes.all_requests() == []
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: replica_count 2: Vertex machines with NVIDIA_H100_80GB hold 8 of them, "
                                     "not accelerator_count 1 (8: a3-highgpu-8g)")


def test_a_template_compiled_from_other_code_is_not_recompiled_for_several_machines(tmp_path, template, course_file):
    """replica_count above 1 compiles the pipeline again from this checkout; a template whose defaults (or code)
    differ would be silently replaced, so it is refused instead."""
    edited = yaml.safe_load(template.read_text())
    edited["root"]["inputDefinitions"]["parameters"]["kl_coeff"]["defaultValue"] = 0.5
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(edited))
    with google_cloud_fakes(tmp_path / "home") as fakes:
        result = run_cli(_submit_args(other, fakes, "--params", str(course_file), "--skip-data-check",
                                      "--set", "replica_count=2", "--set", "accelerator_type=NVIDIA_A100_80GB",
                                      "--set", "accelerator_count=8", "--set", "batch_size=16",
                                      "--set", "ppo_minibatch_size=16"), fakes.env())
        assert fakes.all_requests() == []
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {other} was compiled from other code or defaults than this checkout's")
