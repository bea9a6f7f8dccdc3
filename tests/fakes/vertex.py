"""The Vertex AI REST API (v1) as the SDK uses it for pipeline jobs, experiments, the Model
Registry, endpoints and TensorBoard. Long-running operations complete at once."""

import itertools
import re
from datetime import datetime, timezone

from .http_server import FakeHttpServer, Response, error

PARENT = r"/v1/projects/([^/]+)/locations/([^/]+)"
TERMINAL_PIPELINE_STATES = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVertex(FakeHttpServer):
    def __init__(self, project_number: str, pipeline_states: tuple[str, ...] = (
            "PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED")):
        super().__init__("vertex")
        self.project_number = project_number
        self.pipeline_states = pipeline_states
        self.pipeline_jobs: dict[str, dict] = {}
        self._job_reads: dict[str, int] = {}
        # what finished tasks report: output parameters and artifacts, by task name
        self.task_outputs: dict[str, dict[str, str]] = {}
        self.task_artifacts: dict[str, dict[str, dict]] = {}
        self.contexts: dict[str, dict] = {}
        self._ids = itertools.count(1000)
        self.route("POST", PARENT + r"/pipelineJobs", self._create_pipeline_job)
        self.route("GET", PARENT + r"/pipelineJobs/([^/:]+)", self._get_pipeline_job)
        self.metadata_stores: dict[str, dict] = {}
        self.route("GET", PARENT + r"/metadataStores/([^/:]+)", self._get_metadata_store)
        self.route("POST", PARENT + r"/metadataStores", self._create_metadata_store)
        self.route("GET", PARENT + r"/metadataStores/([^/]+)/contexts/([^/:]+)", self._get_context)
        self.route("POST", PARENT + r"/metadataStores/([^/]+)/contexts", self._create_context)
        self.route("POST", PARENT + r"/metadataStores/([^/]+)/contexts/([^/:]+):addContextChildren",
                   self._add_context_children)
        self.models: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.route("POST", PARENT + r"/models:upload", self._upload_model)
        self.route("GET", PARENT + r"/models/([^/:@]+)(@[^/:]+)?", self._get_model)
        self.route("POST", PARENT + r"/endpoints", self._create_endpoint)
        self.route("GET", PARENT + r"/endpoints/([^/:]+)", self._get_endpoint)
        self.route("POST", PARENT + r"/endpoints/([^/:]+):deployModel", self._deploy_model)
        # TensorBoard: instances are made with `add_tensorboard`; what the SDK creates is kept by resource name
        self.tensorboards: dict[str, dict] = {}
        self.tensorboard_experiments: dict[str, dict] = {}
        self.tensorboard_runs: dict[str, dict] = {}
        self.tensorboard_time_series: dict[str, dict] = {}
        self.tensorboard_points: dict[str, dict[int, dict]] = {}  # time series name -> step -> point
        tensorboard = PARENT + r"/tensorboards/([^/:]+)"
        experiment = tensorboard + r"/experiments/([^/:]+)"
        run = experiment + r"/runs/([^/:]+)"
        self.route("GET", tensorboard, self._get_tensorboard)
        self.route("POST", tensorboard + r"/experiments", self._create_tensorboard_experiment)
        self.route("GET", experiment, self._get_tensorboard_experiment)
        self.route("POST", experiment + r"/runs", self._create_tensorboard_run)
        self.route("GET", run, self._get_tensorboard_run)
        self.route("POST", run + r"/timeSeries", self._create_tensorboard_time_series)
        self.route("GET", run + r"/timeSeries", self._list_tensorboard_time_series)
        self.route("POST", run + r":write", self._write_tensorboard_run_data)

    def _name(self, match, collection: str, resource_id: str) -> str:
        return f"projects/{self.project_number}/locations/{match.group(2)}/{collection}/{resource_id}"

    # pipeline jobs: every read moves a job one state on along `pipeline_states`
    def _create_pipeline_job(self, request, match):
        job_id = request.query.get("pipelineJobId", [f"job-{next(self._ids)}"])[0]
        job = {**request.json(), "name": self._name(match, "pipelineJobs", job_id),
               "state": self.pipeline_states[0], "createTime": _now(), "updateTime": _now()}
        self.pipeline_jobs[job_id] = job
        self._job_reads[job_id] = 0
        return Response(200, job)

    def _get_pipeline_job(self, request, match):
        job_id = match.group(3)
        job = self.pipeline_jobs.get(job_id)
        if job is None:
            return error(404, f"PipelineJob {job_id} not found", "NOT_FOUND")
        self._job_reads[job_id] += 1
        position = min(self._job_reads[job_id], len(self.pipeline_states) - 1)
        state = self.pipeline_states[position]
        job.update(state=state, updateTime=_now())
        if "jobDetail" not in job:  # the service creates the run's metadata context once the job starts
            run_context = {"name": self._name(match, "metadataStores/default/contexts", job_id),
                           "displayName": job_id, "schemaTitle": "system.PipelineRun", "etag": "1"}
            self.contexts[job_id] = run_context
            job["jobDetail"] = {"pipelineRunContext": run_context}
        job["jobDetail"]["taskDetails"] = self._task_details(job, position, state)
        if state == "PIPELINE_STATE_FAILED":
            job["error"] = {"code": 9, "message": "The DAG failed because some tasks failed."}
        return Response(200, job)

    def _task_details(self, job: dict, position: int, state: str) -> list[dict]:
        """Tasks finish one by one while the job runs; all have finished once it has ended."""
        tasks = sorted(job["pipelineSpec"]["root"]["dag"]["tasks"])
        if state in TERMINAL_PIPELINE_STATES:
            finished = len(tasks)
        else:
            finished = len(tasks) * position // len(self.pipeline_states)
        failed = state == "PIPELINE_STATE_FAILED"
        details = []
        for index, task in enumerate(tasks):
            task_state = "RUNNING" if index >= finished else (
                "FAILED" if failed and index == len(tasks) - 1 else "SUCCEEDED")
            detail = {"taskId": str(index + 1), "taskName": task, "state": task_state,
                      "execution": {"metadata": {}}}
            if task_state == "SUCCEEDED":
                detail["execution"]["metadata"] = {
                    f"output:{name}": value for name, value in self.task_outputs.get(task, {}).items()}
                detail["outputs"] = {name: {"artifacts": [artifact]}
                                     for name, artifact in self.task_artifacts.get(task, {}).items()}
            details.append(detail)
        return details

    @staticmethod
    def _done_operation(name: str, type_name: str, resource: dict) -> Response:
        return Response(200, {"name": f"{name}/operations/{abs(hash(name)) % 10**12}", "done": True,
                              "metadata": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1."
                                           "GenericOperationMetadata"},
                              "response": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{type_name}",
                                           **resource}})

    # experiments: a metadata store holding `system.Experiment` contexts
    def _get_metadata_store(self, request, match):
        store = self.metadata_stores.get(match.group(3))
        if store is None:
            return error(404, f"MetadataStore {match.group(3)} not found", "NOT_FOUND")
        return Response(200, store)

    def _create_metadata_store(self, request, match):
        store_id = request.query["metadataStoreId"][0]
        store = {**request.json(), "name": self._name(match, "metadataStores", store_id), "createTime": _now()}
        self.metadata_stores[store_id] = store
        return self._done_operation(store["name"], "MetadataStore", store)

    def _get_context(self, request, match):
        context = self.contexts.get(match.group(4))
        if context is None:
            return error(404, f"Context {match.group(4)} not found", "NOT_FOUND")
        return Response(200, context)

    def _create_context(self, request, match):
        context_id = request.query.get("contextId", [f"context-{next(self._ids)}"])[0]
        name = self._name(match, f"metadataStores/{match.group(3)}/contexts", context_id)
        context = {**request.json(), "name": name, "etag": "1", "createTime": _now(), "updateTime": _now()}
        self.contexts[context_id] = context
        return Response(200, context)

    def _add_context_children(self, request, match):
        context = self.contexts.get(match.group(4))
        if context is None:
            return error(404, f"Context {match.group(4)} not found", "NOT_FOUND")
        context.setdefault("childContexts", []).extend(request.json().get("childContexts", []))
        return Response(200, {})

    # the Model Registry and endpoints
    def _upload_model(self, request, match):
        model_id = str(next(self._ids))
        model = {**request.json()["model"], "name": self._name(match, "models", model_id), "versionId": "1",
                 "createTime": _now(), "updateTime": _now(),
                 # what the service reports for a model served by a custom container
                 "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"]}
        self.models[model_id] = model
        return Response(200, {"name": f"{model['name']}/operations/{next(self._ids)}", "done": True,
                              "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1."
                                           "UploadModelResponse", "model": model["name"], "modelVersionId": "1"}})

    def _get_model(self, request, match):
        model = self.models.get(match.group(3))
        return Response(200, model) if model else error(404, f"Model {match.group(3)} not found", "NOT_FOUND")

    def _create_endpoint(self, request, match):
        endpoint_id = str(next(self._ids))
        endpoint = {**request.json(), "name": self._name(match, "endpoints", endpoint_id), "createTime": _now()}
        self.endpoints[endpoint_id] = endpoint
        return self._done_operation(endpoint["name"], "Endpoint", endpoint)

    def _get_endpoint(self, request, match):
        endpoint = self.endpoints.get(match.group(3))
        return Response(200, endpoint) if endpoint else error(404, f"Endpoint {match.group(3)} not found", "NOT_FOUND")

    def _deploy_model(self, request, match):
        endpoint = self.endpoints.get(match.group(3))
        if endpoint is None:
            return error(404, f"Endpoint {match.group(3)} not found", "NOT_FOUND")
        deployed = {**request.json()["deployedModel"], "id": str(next(self._ids)), "createTime": _now()}
        endpoint.setdefault("deployedModels", []).append(deployed)
        endpoint["trafficSplit"] = {deployed["id"]: 100}
        return Response(200, {"name": f"{endpoint['name']}/operations/{next(self._ids)}", "done": True,
                              "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1."
                                           "DeployModelResponse", "deployedModel": deployed}})

    # TensorBoard: experiments, runs and time series are created and returned at once (no operation);
    # a write answers an empty WriteTensorboardRunDataResponse and replaces the points of steps written before
    def add_tensorboard(self, location: str, display_name: str = "rlhf") -> str:
        """An existing TensorBoard instance (made outside the pipeline); returns its resource name."""
        name = f"projects/{self.project_number}/locations/{location}/tensorboards/{next(self._ids)}"
        self.tensorboards[name] = {"name": name, "displayName": display_name,
                                   "blobStoragePathPrefix": f"cloud-ai-platform-{name.rsplit('/', 1)[1]}",
                                   "etag": "1", "createTime": _now(), "updateTime": _now()}
        return name

    def tensorboard_scalars(self, run_name: str) -> dict[str, list[tuple[int, float, str]]]:
        """What a run holds: time series display name -> [(step, value, wall time)] in step order."""
        return {series["displayName"]: [(step, point["scalar"].get("value", 0.0), point["wallTime"])
                                        for step, point in sorted(self.tensorboard_points[name].items())]
                for name, series in self.tensorboard_time_series.items() if name.startswith(f"{run_name}/timeSeries/")}

    def _tensorboard_name(self, match, groups: int) -> str:
        """The resource name of the first `groups` path ids (tensorboard, experiment, run) of a match."""
        name = self._name(match, "tensorboards", match.group(3))
        for collection, index in (("experiments", 4), ("runs", 5))[:groups - 1]:
            name += f"/{collection}/{match.group(index)}"
        return name

    @staticmethod
    def _lookup(resources: dict[str, dict], name: str, kind: str):
        resource = resources.get(name)
        return (resource, None) if resource else (None, error(404, f"{kind} {name} not found", "NOT_FOUND"))

    def _get_tensorboard(self, request, match):
        tensorboard, missing = self._lookup(self.tensorboards, self._tensorboard_name(match, 1), "Tensorboard")
        return missing or Response(200, tensorboard)

    def _create_child(self, request, match, groups: int, parents: dict[str, dict], kind: str, id_param: str,
                      collection: str, children: dict[str, dict]) -> Response:
        parent, missing = self._lookup(parents, self._tensorboard_name(match, groups), kind)
        if missing:
            return missing
        child_id = request.query.get(id_param, [""])[0]
        if not re.fullmatch(r"[a-z0-9-]{1,128}", child_id):
            return error(400, f"{id_param} must be 1-128 characters of [a-z0-9-], got {child_id!r}",
                         "INVALID_ARGUMENT")
        name = f"{parent['name']}/{collection}/{child_id}"
        if name in children:
            return error(409, f"{name} already exists", "ALREADY_EXISTS")
        children[name] = {**request.json(), "name": name, "etag": "1", "createTime": _now(), "updateTime": _now()}
        return Response(200, children[name])

    def _create_tensorboard_experiment(self, request, match):
        return self._create_child(request, match, 1, self.tensorboards, "Tensorboard", "tensorboardExperimentId",
                                  "experiments", self.tensorboard_experiments)

    def _get_tensorboard_experiment(self, request, match):
        experiment, missing = self._lookup(self.tensorboard_experiments, self._tensorboard_name(match, 2),
                                           "TensorboardExperiment")
        return missing or Response(200, experiment)

    def _create_tensorboard_run(self, request, match):
        return self._create_child(request, match, 2, self.tensorboard_experiments, "TensorboardExperiment",
                                  "tensorboardRunId", "runs", self.tensorboard_runs)

    def _get_tensorboard_run(self, request, match):
        run, missing = self._lookup(self.tensorboard_runs, self._tensorboard_name(match, 3), "TensorboardRun")
        return missing or Response(200, run)

    def _create_tensorboard_time_series(self, request, match):
        run, missing = self._lookup(self.tensorboard_runs, self._tensorboard_name(match, 3), "TensorboardRun")
        if missing:
            return missing
        series = request.json()
        if not series.get("displayName") or _value_type(series.get("valueType")) == "VALUE_TYPE_UNSPECIFIED":
            return error(400, "a TensorboardTimeSeries needs a display name and a value type", "INVALID_ARGUMENT")
        if any(existing["displayName"] == series["displayName"] for existing in self._series_of(run["name"])):
            return error(409, f"TensorboardTimeSeries {series['displayName']!r} already exists in {run['name']}",
                         "ALREADY_EXISTS")
        series_id = request.query.get("tensorboardTimeSeriesId", [str(next(self._ids))])[0]  # the service numbers them
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", series_id):
            return error(400, f"tensorboardTimeSeriesId {series_id!r} does not match [a-z0-9][a-z0-9-]{{0,127}}",
                         "INVALID_ARGUMENT")
        name = f"{run['name']}/timeSeries/{series_id}"
        if name in self.tensorboard_time_series:
            return error(409, f"{name} already exists", "ALREADY_EXISTS")
        self.tensorboard_time_series[name] = {**series, "name": name, "etag": "1", "createTime": _now(),
                                              "updateTime": _now()}
        self.tensorboard_points[name] = {}
        return Response(200, self.tensorboard_time_series[name])

    def _series_of(self, run_name: str) -> list[dict]:
        return [series for name, series in self.tensorboard_time_series.items()
                if name.startswith(f"{run_name}/timeSeries/")]

    def _list_tensorboard_time_series(self, request, match):
        run, missing = self._lookup(self.tensorboard_runs, self._tensorboard_name(match, 3), "TensorboardRun")
        return missing or Response(200, {"tensorboardTimeSeries": self._series_of(run["name"])})

    def _write_tensorboard_run_data(self, request, match):
        run, missing = self._lookup(self.tensorboard_runs, self._tensorboard_name(match, 3), "TensorboardRun")
        if missing:
            return missing
        data = request.json().get("timeSeriesData", [])
        if not data or sum(len(series.get("values", [])) for series in data) > MAX_WRITE_POINTS:
            return error(400, f"a write holds 1 to {MAX_WRITE_POINTS} data points", "INVALID_ARGUMENT")
        for series_data in data:  # all checked before anything is written: a failed write stores nothing
            name = f"{run['name']}/timeSeries/{series_data.get('tensorboardTimeSeriesId')}"
            series = self.tensorboard_time_series.get(name)
            if series is None:
                return error(404, f"TensorboardTimeSeries {name} not found", "NOT_FOUND")
            if _value_type(series_data.get("valueType")) != _value_type(series.get("valueType")):
                return error(400, f"the data's value type does not match {name}'s", "INVALID_ARGUMENT")
        for series_data in data:
            name = f"{run['name']}/timeSeries/{series_data['tensorboardTimeSeriesId']}"
            points = self.tensorboard_points[name]
            for point in series_data.get("values", []):
                points[int(point.get("step", 0))] = point  # int64 travels as a JSON string; zero is left out
        return Response(200, {})


MAX_WRITE_POINTS = 5000  # WriteTensorboardRunDataRequest: "The upper limit of data points per write request"
_VALUE_TYPES = ("VALUE_TYPE_UNSPECIFIED", "SCALAR", "TENSOR", "BLOB_SEQUENCE")


def _value_type(value) -> str:
    """A TensorboardTimeSeries.ValueType given by number (the SDK sends enum-encoding=int) or by name."""
    return _VALUE_TYPES[value] if isinstance(value, int) else (value or "VALUE_TYPE_UNSPECIFIED")
