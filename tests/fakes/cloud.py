"""All Google Cloud fakes together, and the environment that sends a real client process to them.

The product reads no test-only setting: the variables below are the client libraries' own
(google-auth's metadata server location, google-cloud-storage's emulator host, gRPC's proxy and
root certificates), and the Vertex AI endpoint is the command's ordinary `--api-endpoint` option.
"""

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .gcs import FakeGcs
from .metadata_server import metadata_server
from .resource_manager import FakeResourceManager
from .vertex import FakeVertex

PROJECT_ID = "fake-project"
PROJECT_NUMBER = "123456789012"
LOCATION = "us-central1"
CLI = [sys.executable, "-m", "cli"]
# Variables of the developer's own setup that would lead the clients elsewhere.
_DROPPED = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT",
            "KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME",
            "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME", "GOOGLE_CLOUD_UNIVERSE_DOMAIN")


def client_env(home: Path) -> dict[str, str]:
    """This process's environment with a scratch HOME, no gcloud credentials and no proxy for loopback."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(HOME=str(home), CLOUDSDK_CONFIG=str(home / "gcloud"), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", HF_HUB_OFFLINE="1")
    return env


@dataclass
class GoogleCloudFakes:
    metadata: object
    gcs: FakeGcs
    vertex: FakeVertex
    resource_manager: FakeResourceManager
    home: Path

    def env(self) -> dict[str, str]:
        return {
            **client_env(self.home),
            "GCE_METADATA_HOST": f"127.0.0.1:{self.metadata.port}",
            "GCE_METADATA_IP": f"127.0.0.1:{self.metadata.port}",
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            **self.resource_manager.env(),
        }

    def all_requests(self) -> list:
        return self.metadata.requests + self.gcs.requests + self.vertex.requests

    def requests_after_credentials(self) -> list:
        """Requests to the APIs themselves (the metadata server only hands out credentials)."""
        return self.gcs.requests + self.vertex.requests + self.resource_manager.requests


@contextmanager
def google_cloud_fakes(home: Path, pipeline_states: tuple[str, ...] | None = None):
    home.mkdir(parents=True, exist_ok=True)
    vertex = FakeVertex(PROJECT_NUMBER, **({"pipeline_states": pipeline_states} if pipeline_states else {}))
    servers = [metadata_server(PROJECT_ID), FakeGcs(PROJECT_NUMBER), vertex]
    resource_manager = FakeResourceManager(PROJECT_ID, PROJECT_NUMBER)
    for server in servers:
        server.start()
    resource_manager.start(home)
    try:
        yield GoogleCloudFakes(servers[0], servers[1], vertex, resource_manager, home)
    finally:
        resource_manager.stop()
        for server in servers:
            server.stop()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`rlhf-pipeline ARGS` in a fresh process, as a user runs it."""
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[2])
