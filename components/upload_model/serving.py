"""Uploading the tuned policy to the Vertex AI Model Registry and deploying it to an endpoint.

Serving container: Hugging Face's Text Generation Inference (TGI) Deep Learning Container for Google
Cloud (TGI_SERVING_IMAGE: TGI 2.4 for CUDA 12.4, the newest listed in Hugging Face's documentation of
its Google Cloud containers, huggingface.co/docs/google-cloud/containers/available). At start it copies
the model directory from the model's Cloud Storage `artifact_uri` (Vertex passes it as
AIP_STORAGE_URI) and serves it; the tuned policy is saved as exactly such a directory (config,
safetensors weights and tokenizer at its top level). It listens on AIP_HTTP_PORT (8080), mounts
Vertex's predict and health routes itself, and batches generation on the GPU. Requests take
`{"instances": [{"inputs": PROMPT, "parameters": {"max_new_tokens": N}}]}`; on that route TGI
samples and reads only `max_new_tokens` and `seed`. Vertex's prebuilt PyTorch containers would need
a TorchServe archive instead.

Off Vertex (a local run) nothing is uploaded: the stage says what it would do and outputs empty
names, as Vertex's own pipeline does when it skips deployment.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from components.common.gcs_paths import GCS_SCHEME, uri_of_fuse_path
from components.common.vertex_placeholders import on_vertex

TGI_SERVING_IMAGE = ("us-docker.pkg.dev/deeplearning-platform-release/gcr.io/"
                     "huggingface-text-generation-inference-cu124.2-4.ubuntu2204.py311")
SERVING_PORT = 8080
SERVING_ENVIRONMENT = {"NUM_SHARD": "1"}
SERVING_MACHINE_TYPE = "g2-standard-8"
SERVING_ACCELERATOR = "NVIDIA_L4"
SERVING_ACCELERATOR_COUNT = 1
MAX_DISPLAY_NAME = 128


@dataclass(frozen=True)
class UploadConfig:
    policy_uri: str  # the policy artifact's URI (gs:// on Vertex)
    policy_path: str  # its local path (/gcs/... on Vertex)
    large_model_reference: str
    model_display_name: str = ""
    deploy_model: bool = True
    project: str = ""
    location: str = ""
    encryption_spec_key_name: str = ""
    api_endpoint: str | None = None  # None: the location's regional endpoint

    def storage_uri(self) -> str:
        """The policy directory as a gs:// URI, or "" when it is not in Cloud Storage."""
        if self.policy_uri.startswith(GCS_SCHEME):
            return self.policy_uri
        return uri_of_fuse_path(self.policy_path) or ""

    def on_vertex(self) -> bool:
        return on_vertex(self.project, self.location) and bool(self.storage_uri())

    def display_name(self) -> str:
        if self.model_display_name:
            return self.model_display_name[:MAX_DISPLAY_NAME]
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.large_model_reference).strip("-") or "model"
        return f"{base}-rlhf"[:MAX_DISPLAY_NAME]


def upload_and_deploy(config: UploadConfig, log: Callable[[str], None] = print) -> tuple[str, str]:
    """(model resource name, endpoint resource name); each is "" when that step does not happen."""
    name = config.display_name()
    if not config.on_vertex():
        deploy = f" and deploy it to a new endpoint on {SERVING_MACHINE_TYPE}" if config.deploy_model else ""
        log(f"not on Vertex AI: would upload the tuned policy ({config.policy_uri}) to the Model Registry as "
            f"'{name}' with serving container {TGI_SERVING_IMAGE}{deploy}; nothing uploaded")
        return "", ""
    policy_dir = Path(config.policy_path)
    if policy_dir.is_dir() and not (policy_dir / "config.json").is_file():
        raise ValueError(f"{policy_dir} holds no Hugging Face model (config.json): nothing to serve")

    from google.cloud import aiplatform

    aiplatform.init(project=config.project, location=config.location, api_endpoint=config.api_endpoint,
                    api_transport="rest")
    key = config.encryption_spec_key_name or None
    log(f"uploading {config.storage_uri()} to the Model Registry as '{name}'")
    model = aiplatform.Model.upload(
        display_name=name,
        artifact_uri=config.storage_uri(),
        serving_container_image_uri=TGI_SERVING_IMAGE,
        serving_container_ports=[SERVING_PORT],
        serving_container_environment_variables=SERVING_ENVIRONMENT,
        description=f"{config.large_model_reference} tuned with RLHF (PPO) by rlhf-pipeline",
        encryption_spec_key_name=key,
    )
    log(f"model: {model.resource_name}")
    if not config.deploy_model:
        return model.resource_name, ""
    endpoint = aiplatform.Endpoint.create(display_name=f"{name}-endpoint", encryption_spec_key_name=key)
    log(f"deploying to {endpoint.resource_name} on {SERVING_MACHINE_TYPE} with {SERVING_ACCELERATOR}")
    model.deploy(endpoint=endpoint, machine_type=SERVING_MACHINE_TYPE, accelerator_type=SERVING_ACCELERATOR,
                 accelerator_count=SERVING_ACCELERATOR_COUNT, traffic_percentage=100)
    return model.resource_name, endpoint.resource_name
