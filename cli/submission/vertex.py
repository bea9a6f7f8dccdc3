"""Submitting the pipeline to Vertex AI Pipelines through `google.cloud.aiplatform.PipelineJob`.

Credentials are the ordinary Application Default Credentials (`gcloud auth application-default
login`, a service account key named by GOOGLE_APPLICATION_CREDENTIALS, or the metadata server of
the machine the command runs on). The SDK is used over its REST transport, so `--api-endpoint`
can name any endpoint, regional or private.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from cli.submission.progress import JobStatus
from cli.submission.template import pipeline_name

CONSOLE_LINK = "https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/runs/{job_id}?project={project}"
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}\Z")
NETWORK = re.compile(r"projects/[^/]+/global/networks/[^/]+\Z")
REPORT_SCHEMAS = ("system.HTML", "system.Markdown")
PIPELINE_OUTPUTS = ("model_resource_name", "endpoint_resource_name")
FINISHED_TASK_STATES = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELLED", "NOT_TRIGGERED"}


@dataclass(frozen=True)
class VertexSettings:
    project: str
    location: str
    pipeline_root: str
    template_path: Path
    display_name: str | None = None
    service_account: str | None = None
    network: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    experiment: str | None = None
    enable_caching: bool | None = None  # None keeps the template's own (per-task) caching settings
    encryption_key: str | None = None
    api_endpoint: str | None = None

    def problems(self) -> list[str]:
        found = []
        if not re.fullmatch(r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/.*)?", self.pipeline_root):
            found.append(f"--pipeline-root {self.pipeline_root!r}: expected a Cloud Storage URI gs://BUCKET/PATH")
        if self.network and not NETWORK.match(self.network):
            found.append(f"--network {self.network!r}: expected projects/PROJECT_NUMBER/global/networks/NAME")
        if self.service_account and "@" not in self.service_account:
            found.append(f"--service-account {self.service_account!r}: expected an email such as "
                         "NAME@PROJECT.iam.gserviceaccount.com")
        for key, value in self.labels.items():
            if not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
                found.append(f"--labels {key}={value}: keys start with a lowercase letter; keys and values hold "
                             "at most 63 lowercase letters, digits, '_' or '-'")
        return found


def parse_labels(text: str | None) -> dict[str, str]:
    """`k=v,k2=v2` as a dict."""
    labels = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise UserInputError(f"--labels {item!r}: expected KEY=VALUE[,KEY=VALUE...]")
        labels[key.strip()] = value.strip()
    return labels


def console_link(project: str, location: str, job_id: str) -> str:
    return CONSOLE_LINK.format(project=project, location=location, job_id=job_id)


def build_job(settings: VertexSettings, parameter_values: dict[str, Any], spec: dict, credentials=None):
    """The PipelineJob that `submit_job` sends, for the template `spec` read from settings.template_path.

    With `credentials=None` the Application Default Credentials are used."""
    from google.cloud import aiplatform

    aiplatform.init(project=settings.project, location=settings.location, api_endpoint=settings.api_endpoint,
                    api_transport="rest", credentials=credentials)
    try:
        return aiplatform.PipelineJob(
            display_name=settings.display_name or pipeline_name(spec),
            template_path=str(settings.template_path),
            pipeline_root=settings.pipeline_root,
            parameter_values=parameter_values,
            enable_caching=settings.enable_caching,
            labels=settings.labels or None,
            encryption_spec_key_name=settings.encryption_key or None,
            project=settings.project,
            location=settings.location,
            credentials=credentials,
        )
    except ValueError as error:  # the SDK's own checks (unknown names, display name, labels)
        raise UserInputError(f"the Vertex AI SDK refused the job: {error}") from None


def request_body(job, settings: VertexSettings) -> dict:
    """What `submit_job` would POST, with the (long) pipeline spec summarised."""
    body = job.to_dict()
    spec = body.get("pipelineSpec", {})
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    body["pipelineSpec"] = {"pipelineInfo": spec.get("pipelineInfo"), "sdkVersion": spec.get("sdkVersion"),
                            "tasks": sorted(tasks), "source": str(settings.template_path)}
    pools = worker_pools(spec)
    if pools:
        body["pipelineSpec"]["workerPools"] = pools
    if settings.service_account:
        body["serviceAccount"] = settings.service_account
    if settings.network:
        body["network"] = settings.network
    parent = f"projects/{settings.project}/locations/{settings.location}"
    return {"method": "POST", "url": f"{parent}/pipelineJobs?pipelineJobId={job.job_id}",
            "experiment": settings.experiment, "pipelineJob": body}


def worker_pools(spec: dict) -> dict[str, list[dict]]:
    """The machines of each step that runs as a custom job (pipeline/vertex_custom_jobs.py), by component:
    replica count, machine type and accelerators of each worker pool."""
    pools = {}
    for name, component in spec.get("components", {}).items():
        specs = component.get("inputDefinitions", {}).get("parameters", {}).get("worker_pool_specs", {})
        if specs.get("defaultValue"):
            pools[name] = [{key: int(value) if isinstance(value, float) else value  # protobuf numbers are doubles
                            for key, value in {"replica_count": pool["replica_count"], **pool["machine_spec"]}.items()}
                           for pool in specs["defaultValue"]]
    return pools


def submit_job(job, settings: VertexSettings) -> tuple[str, str]:
    """Create the job on Vertex AI; returns its resource name and its console link."""
    job.submit(service_account=settings.service_account, network=settings.network,
               experiment=settings.experiment)
    return job.resource_name, console_link(settings.project, settings.location, job.job_id)


def _status(job, task_names: set[str]) -> JobStatus:
    from google.cloud.aiplatform import pipeline_jobs

    state = job.state  # one GET: refreshes the whole resource
    resource = job.gca_resource
    details = [t for t in resource.job_detail.task_details if t.task_name in task_names]
    finished = sum(1 for t in details if t.state.name in FINISHED_TASK_STATES)
    done = state in pipeline_jobs._PIPELINE_COMPLETE_STATES
    succeeded = state.name == "PIPELINE_STATE_SUCCEEDED"
    outputs = _outputs(resource.job_detail.task_details) if done else {}
    return JobStatus(state.name, done, succeeded, finished, resource.error.message if done else "", outputs)


def _outputs(task_details) -> dict[str, str]:
    outputs = {}
    for task in task_details:
        metadata = dict(task.execution.metadata or {}) if task.execution else {}
        for name in PIPELINE_OUTPUTS:
            if f"output:{name}" in metadata:
                outputs[name] = str(metadata[f"output:{name}"]) or "(none)"
        for output_name, artifact_list in task.outputs.items():
            for artifact in artifact_list.artifacts:
                if artifact.schema_title in REPORT_SCHEMAS:
                    outputs[f"{task.task_name} {output_name}"] = artifact.uri
    return outputs


def status_poller(job, spec: dict):
    """A function returning the job's current JobStatus (one request a call)."""
    task_names = set(spec.get("root", {}).get("dag", {}).get("tasks", {}))
    return lambda: _status(job, task_names)
