"""The upload/deploy stage: on Vertex AI it registers and deploys the tuned policy (checked against
the Vertex REST fake, credentials from the metadata-server fake); elsewhere it only says what it
would do and outputs empty names."""

import json
import subprocess
import sys
import textwrap

from kfp import dsl

from components.upload_model.component import upload_model
from components.upload_model.serving import TGI_SERVING_IMAGE, UploadConfig, upload_and_deploy
from fakes.cloud import LOCATION, PROJECT_ID, google_cloud_fakes

PLACEHOLDER_PROJECT = "{{$.pipeline_google_cloud_project_id}}"
KMS_KEY = "projects/fake-project/locations/us-central1/keyRings/rlhf/cryptoKeys/models"


def test_off_vertex_it_says_what_it_would_do_and_outputs_empty_names(tmp_path):
    policy = dsl.Model(uri=str(tmp_path / "policy"))
    lines = []
    config = UploadConfig(policy.uri, policy.path, "gpt2", "", True, PLACEHOLDER_PROJECT,
                          "{{$.pipeline_google_cloud_location}}")
    assert upload_and_deploy(config, log=lines.append) == ("", "")
    assert "not on Vertex AI: would upload the tuned policy" in lines[0] and "'gpt2-rlhf'" in lines[0]
    assert TGI_SERVING_IMAGE in lines[0] and "deploy it to a new endpoint" in lines[0]
    outputs = upload_model(policy, "gpt2", False, PLACEHOLDER_PROJECT, LOCATION, "", "0+test", None)
    assert outputs.model_resource_name == "" and outputs.endpoint_resource_name == ""


def _upload_in_fresh_process(fakes, deploy: bool) -> tuple[str, str]:
    config = dict(policy_uri="gs://rlhf-runs/p/tune-policy/policy", policy_path="/gcs/rlhf-runs/p/tune-policy/policy",
                  large_model_reference="meta-llama/Llama-2-7b-hf", model_display_name="", deploy_model=deploy,
                  project=PROJECT_ID, location=LOCATION, encryption_spec_key_name=KMS_KEY,
                  api_endpoint=fakes.vertex.url)
    code = textwrap.dedent(f"""
        import json
        from components.upload_model.serving import UploadConfig, upload_and_deploy
        print(json.dumps(upload_and_deploy(UploadConfig(**{config!r}))))
    """)
    result = subprocess.run([sys.executable, "-c", code], env=fakes.env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def test_on_vertex_the_policy_is_uploaded_with_the_serving_container_and_deployed(tmp_path):
    with google_cloud_fakes(tmp_path / "home") as fakes:
        model_name, endpoint_name = _upload_in_fresh_process(fakes, deploy=True)
        [upload] = fakes.vertex.find("POST", r"/v1/projects/fake-project/locations/us-central1/models:upload")
        [create_endpoint] = fakes.vertex.find("POST", r"/v1/projects/fake-project/locations/us-central1/endpoints")
        [deploy] = fakes.vertex.find("POST", r"/v1/projects/.*/endpoints/[0-9]+:deployModel")
    model = upload.json()["model"]
    assert model["displayName"] == "meta-llama-Llama-2-7b-hf-rlhf"
    assert model["artifactUri"] == "gs://rlhf-runs/p/tune-policy/policy"
    assert model["containerSpec"]["imageUri"] == TGI_SERVING_IMAGE
    assert model["containerSpec"]["ports"] == [{"containerPort": 8080}]
    assert model["encryptionSpec"] == {"kmsKeyName": KMS_KEY}
    assert create_endpoint.json()["encryptionSpec"] == {"kmsKeyName": KMS_KEY}
    deployed = deploy.json()["deployedModel"]
    assert deployed["model"] == f"{model_name}@1"  # the SDK deploys the version it uploaded
    from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType

    machine = deployed["dedicatedResources"]["machineSpec"]  # enums travel as numbers (enum-encoding=int)
    assert machine["machineType"] == "g2-standard-8"
    assert AcceleratorType(machine["acceleratorType"]).name == "NVIDIA_L4" and machine["acceleratorCount"] == 1
    assert deploy.json()["trafficSplit"] == {"0": 100}
    assert model_name.startswith("projects/123456789012/locations/us-central1/models/")
    assert endpoint_name.startswith("projects/123456789012/locations/us-central1/endpoints/")
