"""Submitting the pipeline to a self-hosted Kubeflow Pipelines (v2 API) through `kfp.Client`."""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from cli.submission.progress import JobStatus
from cli.submission.template import pipeline_name

DONE_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
DEFAULT_EXPERIMENT = "Default"


@dataclass(frozen=True)
class KubeflowSettings:
    host: str
    template_path: Path
    namespace: str | None = None
    experiment: str | None = None
    display_name: str | None = None
    pipeline_root: str | None = None
    service_account: str | None = None
    enable_caching: bool | None = None  # None keeps the template's own (per-task) caching settings


def connect(settings: KubeflowSettings):
    """A `kfp.Client` for the cluster; it checks the API's health on construction."""
    import kfp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        try:
            if settings.namespace:
                return kfp.Client(host=settings.host, namespace=settings.namespace)
            return kfp.Client(host=settings.host)
        except (TimeoutError, OSError) as error:
            raise UserInputError(f"--host {settings.host}: Kubeflow Pipelines does not answer ({error})") from None


def request_body(settings: KubeflowSettings, parameter_values: dict[str, Any], spec: dict) -> dict:
    """What `submit_run` would send, with the (long) pipeline spec summarised."""
    runtime_config = {"parameters": parameter_values}
    if settings.pipeline_root:
        runtime_config["pipeline_root"] = settings.pipeline_root
    return {
        "host": settings.host,
        "namespace": settings.namespace,
        "experiment": settings.experiment or DEFAULT_EXPERIMENT,
        "run": {
            "display_name": settings.display_name or pipeline_name(spec),
            "service_account": settings.service_account,
            "enable_caching": settings.enable_caching,
            "runtime_config": runtime_config,
            "pipeline_spec": {"pipelineInfo": spec.get("pipelineInfo"), "source": str(settings.template_path),
                              "tasks": sorted(spec.get("root", {}).get("dag", {}).get("tasks", {}))},
        },
    }


def submit_run(client, settings: KubeflowSettings, parameter_values: dict[str, Any], spec: dict) -> tuple[str, str]:
    """Create the run (and its experiment when new); returns the run id and its link in the UI."""
    import kfp_server_api

    try:
        result = client.create_run_from_pipeline_package(
            str(settings.template_path),
            arguments=parameter_values,
            run_name=settings.display_name or pipeline_name(spec),
            experiment_name=settings.experiment or DEFAULT_EXPERIMENT,
            namespace=settings.namespace,
            pipeline_root=settings.pipeline_root,
            enable_caching=settings.enable_caching,
            service_account=settings.service_account,
        )
    except kfp_server_api.ApiException as error:
        raise UserInputError(f"Kubeflow Pipelines at {settings.host} refused the run: "
                             f"{error.status} {error.reason}: {error.body}") from None
    return result.run_id, f"{settings.host.rstrip('/')}/#/runs/details/{result.run_id}"


def status_poller(client, run_id: str):
    """A function returning the run's current JobStatus (one request a call)."""

    def poll() -> JobStatus:
        run = client.get_run(run_id)
        state = str(run.state or "RUNTIME_STATE_UNSPECIFIED")
        tasks = (run.run_details.task_details or []) if run.run_details else []
        finished = sum(1 for t in tasks if str(t.state) in DONE_STATES)
        done = state in DONE_STATES
        error = (run.error.message or "") if run.error else ""
        return JobStatus(state, done, state == "SUCCEEDED", finished, error)

    return poll
