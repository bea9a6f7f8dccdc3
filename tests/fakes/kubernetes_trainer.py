"""The Kubernetes API as Kubeflow Trainer 2.2+ serves TrainJobs (custom objects of `trainer.kubeflow.org/v1alpha1`:
create, get, delete), with a controller standing in for the Trainer's: each node of a created job is a local
process running the job's command, given the torch runtime's PET_ variables (its rank, the node count, the
first node's address on 127.0.0.1). The job's fields are checked against the Trainer's schema (the fields this
project may send): with `fieldValidation=Strict` an unknown field is refused as the API server refuses it,
without it the field is dropped. Persistent volume claims are folders of this machine, and a node sees the
files of the claims that the job's runtime patch mounts into the `node` container of the `node` job at their
folder; a job whose nodes would not see the claim fails, as its nodes would find no request to run.
"""

import itertools
import os
import re
import socket
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

from .http_server import FakeHttpServer, Response

JOBS = r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainjobs"
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
ANY = None  # a field whose content is not checked (ObjectMeta, Volume, EnvVar, ...)
POD_SPEC_PATCH = {"serviceAccountName": ANY, "volumes": ANY, "initContainers": ANY, "imagePullSecrets": ANY,
                  "securityContext": ANY, "nodeSelector": ANY, "affinity": ANY, "tolerations": ANY,
                  "schedulingGates": ANY,
                  "containers": [{"name": ANY, "env": ANY, "volumeMounts": ANY, "securityContext": ANY}]}
TRAIN_JOB_SCHEMA = {  # trainer.kubeflow.org/v1alpha1 TrainJob, Kubeflow Trainer 2.2+ (runtimePatches)
    "apiVersion": ANY, "kind": ANY, "metadata": ANY, "status": ANY,
    "spec": {
        "runtimeRef": {"name": ANY, "apiGroup": ANY, "kind": ANY},
        "initializer": ANY, "suspend": ANY, "activeDeadlineSeconds": ANY, "managedBy": ANY,
        "trainer": {"image": ANY, "command": ANY, "args": ANY, "env": ANY, "numNodes": ANY,
                    "resourcesPerNode": ANY, "numProcPerNode": ANY},
        "runtimePatches": [{"manager": ANY, "time": ANY, "trainingRuntimeSpec": {"template": {
            "metadata": ANY, "spec": {"replicatedJobs": [{"name": ANY, "template": {
                "metadata": ANY, "spec": {"template": {"metadata": ANY, "spec": POD_SPEC_PATCH}}}}]}}}}],
    },
}


def unknown_fields(value, schema, path: str = "") -> list[str]:
    """The paths of `value`'s fields that `schema` does not know."""
    if schema is ANY:
        return []
    if isinstance(schema, list):
        return [found for index, item in enumerate(value) for found in unknown_fields(item, schema[0], f"{path}[{index}]")]
    found = []
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        found += [where] if key not in schema else unknown_fields(item, schema[key], where)
    return found


def without_unknown_fields(value, schema):
    if schema is ANY:
        return value
    if isinstance(schema, list):
        return [without_unknown_fields(item, schema[0]) for item in value]
    return {key: without_unknown_fields(item, schema[key]) for key, item in value.items() if key in schema}


def _status(code: int, reason: str, message: str) -> Response:
    return Response(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                           "reason": reason, "code": code})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeKubernetesTrainer(FakeHttpServer):
    def __init__(self, claims: dict[str, Path], runtimes: tuple[str, ...] = ("torch-distributed",),
                 cwd: Path | None = None):
        super().__init__("kubernetes")
        self.claims = claims  # claim name -> the folder that stands for its volume
        self.runtimes = runtimes
        self.cwd = cwd
        self.jobs: dict[tuple[str, str], dict] = {}
        self.deleted: list[str] = []
        self._uids = itertools.count(1)
        self.route("POST", JOBS, self._create)
        self.route("GET", JOBS + r"/([^/]+)", self._get)
        self.route("DELETE", JOBS + r"/([^/]+)", self._delete)

    def _create(self, request, match):
        namespace, body = match.group(1), request.json()
        name = body.get("metadata", {}).get("name", "")
        if body.get("apiVersion") != "trainer.kubeflow.org/v1alpha1" or body.get("kind") != "TrainJob":
            return _status(400, "BadRequest", "expected a trainer.kubeflow.org/v1alpha1 TrainJob")
        if not DNS_LABEL.match(name) or len(name) > 63:
            return _status(422, "Invalid", f"TrainJob.trainer.kubeflow.org {name!r} is invalid: metadata.name must "
                                           "match RFC 1035 DNS label format")
        unknown = unknown_fields(body, TRAIN_JOB_SCHEMA)
        if unknown and request.query.get("fieldValidation") == ["Strict"]:
            return _status(400, "BadRequest", "TrainJob in version \"v1alpha1\" cannot be handled as a TrainJob: "
                           + ", ".join(f'strict decoding error: unknown field "{field}"' for field in unknown))
        body = without_unknown_fields(body, TRAIN_JOB_SCHEMA)
        runtime = body["spec"]["runtimeRef"]["name"]
        if runtime not in self.runtimes:
            return _status(422, "Invalid", f"admission webhook denied the request: ClusterTrainingRuntime "
                                           f"{runtime!r} not found")
        if (namespace, name) in self.jobs:
            return _status(409, "AlreadyExists", f'trainjobs.trainer.kubeflow.org "{name}" already exists')
        job = {**body, "metadata": {**body["metadata"], "namespace": namespace, "uid": f"uid-{next(self._uids)}",
                                    "creationTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
               "status": {}}
        self.jobs[(namespace, name)] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return Response(201, job)

    def _get(self, request, match):
        job = self.jobs.get((match.group(1), match.group(2)))
        if job is None:
            return _status(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{match.group(2)}" not found')
        return Response(200, job)

    def _delete(self, request, match):
        job = self.jobs.pop((match.group(1), match.group(2)), None)
        if job is None:
            return _status(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{match.group(2)}" not found')
        self.deleted.append(match.group(2))
        return Response(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

    def _mount_problem(self, spec: dict) -> str | None:
        """Why the nodes would not see a claim's files at its folder (None: they would see every claim's)."""
        mounts = {}
        for patch in spec.get("runtimePatches", []):
            for job in patch["trainingRuntimeSpec"]["template"]["spec"].get("replicatedJobs", []):
                if job["name"] != "node":
                    continue
                pod = job["template"]["spec"]["template"]["spec"]
                claims = {volume["name"]: volume["persistentVolumeClaim"]["claimName"]
                          for volume in pod.get("volumes", []) if "persistentVolumeClaim" in volume}
                for container in pod.get("containers", []):
                    if container["name"] == "node":
                        mounts.update({claims[mount["name"]]: Path(mount["mountPath"])
                                       for mount in container.get("volumeMounts", []) if mount["name"] in claims})
        for claim, folder in self.claims.items():
            if claim in mounts and mounts[claim].resolve() != folder.resolve():
                return f"the fake mounts {claim} at {folder} only"
        unknown = sorted(set(mounts) - set(self.claims))
        if unknown:
            return f'persistentvolumeclaim "{unknown[0]}" not found'
        if not mounts:
            return "the nodes mount no volume, so they find no request to run"
        return None

    def _finish(self, job: dict, condition: str, reason: str, message: str) -> None:
        job["status"] = {"conditions": [{"type": condition, "status": "True", "reason": reason, "message": message}]}

    def _run(self, job: dict) -> None:
        trainer = job["spec"]["trainer"]
        problem = self._mount_problem(job["spec"])
        if problem:
            self._finish(job, "Failed", "PodsNotStarted", problem)
            return
        nodes, port = trainer["numNodes"], _free_port()
        command = [sys.executable if part == "python" else part for part in trainer["command"]]
        environment = {**os.environ, **{e["name"]: e["value"] for e in trainer.get("env", [])},
                       "PET_NNODES": str(nodes), "PET_NPROC_PER_NODE": "auto", "PET_MASTER_ADDR": "127.0.0.1",
                       "PET_MASTER_PORT": str(port)}
        for leftover in ("LOCAL_RANK", "WORLD_SIZE", "RLHF_TRAIN_JOB"):  # a node's pod starts afresh
            environment.pop(leftover, None)
        programs = [subprocess.Popen(command, env={**environment, "PET_NODE_RANK": str(rank)}, cwd=self.cwd)
                    for rank in range(nodes)]
        codes = [program.wait() for program in programs]
        if any(codes):
            self._finish(job, "Failed", "JobFailed", f"nodes exited with {codes}")
        else:
            self._finish(job, "Complete", "JobsCompleted", "jobs completed")
