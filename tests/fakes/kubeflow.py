"""The Kubeflow Pipelines v2beta1 REST API: healthz, experiments (list, create) and runs
(create, get), as `kfp.Client` calls them. Every read of a run moves it one state on."""

import itertools
import json
from datetime import datetime, timezone

from .http_server import FakeHttpServer, Response, error

API = r"/apis/v2beta1"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubeflow(FakeHttpServer):
    def __init__(self, run_states: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEEDED"), multi_user: bool = False):
        super().__init__("kubeflow")
        self.run_states = run_states
        self.multi_user = multi_user
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self._reads: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.route("GET", API + r"/healthz", lambda request, match: Response(
            200, {"multi_user": self.multi_user, "pipeline_store": "database"}))
        self.route("GET", API + r"/experiments", self._list_experiments)
        self.route("POST", API + r"/experiments", self._create_experiment)
        self.route("POST", API + r"/runs", self._create_run)
        self.route("GET", API + r"/runs/([^/:]+)", self._get_run)

    def add_experiment(self, display_name: str, namespace: str = "") -> dict:
        experiment_id = f"experiment-{next(self._ids)}"
        experiment = {"experiment_id": experiment_id, "display_name": display_name, "namespace": namespace,
                      "created_at": _now(), "storage_state": "AVAILABLE"}
        self.experiments[experiment_id] = experiment
        return experiment

    def _list_experiments(self, request, match):
        found = list(self.experiments.values())
        raw_filter = request.query.get("filter", [""])[0]
        if raw_filter:  # kfp.Client sends a protobuf-JSON Filter: display_name EQUALS (= 1) <name>
            for predicate in json.loads(raw_filter).get("predicates", []):
                if predicate.get("key") != "display_name" or predicate.get("operation") not in (1, "EQUALS"):
                    return error(400, f"unsupported filter predicate {predicate}", "INVALID_ARGUMENT")
                wanted = predicate.get("stringValue", predicate.get("string_value"))
                found = [e for e in found if e["display_name"] == wanted]
        namespace = request.query.get("namespace", [""])[0]
        if namespace:
            found = [e for e in found if e["namespace"] == namespace]
        return Response(200, {"experiments": found, "total_size": len(found)} if found else {})

    def _create_experiment(self, request, match):
        body = request.json()
        if not body.get("display_name"):
            return error(400, "Experiment name is empty", "INVALID_ARGUMENT")
        return Response(200, self.add_experiment(body["display_name"], body.get("namespace", "")))

    def _create_run(self, request, match):
        body = request.json()
        if body.get("experiment_id") not in self.experiments:
            return error(404, f"experiment {body.get('experiment_id')} not found", "NOT_FOUND")
        run_id = f"run-{next(self._ids)}"
        run = {**body, "run_id": run_id, "state": self.run_states[0], "created_at": _now(),
               "storage_state": "AVAILABLE"}
        self.runs[run_id] = run
        self._reads[run_id] = 0
        return Response(200, run)

    def _get_run(self, request, match):
        run = self.runs.get(match.group(1))
        if run is None:
            return error(404, f"run {match.group(1)} not found", "NOT_FOUND")
        self._reads[run["run_id"]] += 1
        run["state"] = self.run_states[min(self._reads[run["run_id"]], len(self.run_states) - 1)]
        if run["state"] == "FAILED":
            run["error"] = {"code": 2, "message": "task train-reward-model failed"}
        return Response(200, run)
