"""A training step on several machines of a Kubernetes cluster: a Kubeflow Trainer TrainJob.

A Kubeflow Pipelines step is one pod. With `replica_count` above 1, the Kubeflow flavour of the pipeline
(pipeline/kubeflow_train_jobs.py, compiled by `rlhf-pipeline submit --target kfp`) makes each training step's
pod a launcher (`run_as_train_job`): it copies the step's inputs to a volume that every machine mounts (a
ReadWriteMany PersistentVolumeClaim), creates a TrainJob (Kubeflow Trainer 2.2 or later,
`trainer.kubeflow.org/v1alpha1`) of `replica_count` nodes on the cluster's torch runtime, each node running the
step's training function
(`python -m components.common.train_jobs REQUEST`), waits for it to end, and copies the outputs back into the
step's artifacts. The Trainer tells each node its place in PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR and
PET_MASTER_PORT, from which torchrun spans the nodes (components/common/distributed.py), as Vertex AI's
CLUSTER_SPEC does for its worker pools.

Which arguments of the training function are files: every string argument naming a path that exists is an
input, copied to the volume; every argument whose name ends in `_dir` is an output folder (output_dir,
log_dir, checkpoint_dir), copied to the volume where it holds something and back after the job. A path that
is already on the volume (say a `checkpoint_root` there, so that retries resume) is used in place.
"""

import dataclasses
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRAIN_JOB_VARIABLE = "RLHF_TRAIN_JOB"  # the launcher's settings (TrainJobSettings as JSON), set by the flavour
API_GROUP, API_VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
TRAINER_CONTAINER = "node"  # the torch runtime's replicated job and container that run the training
VOLUME_NAME, SHARED_MEMORY_VOLUME = "rlhf-shared", "dshm"
PATCH_MANAGER = "rlhf-pipeline"
# The launcher's pod, as the Kubeflow flavour puts it in the environment (Kubernetes' downward API)
POD_NAME_VARIABLE, POD_UID_VARIABLE = "RLHF_POD_NAME", "RLHF_POD_UID"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
COMPLETE, FAILED = "Complete", "Failed"  # TrainJob conditions that end it
MISSED_READS = 5  # reads of the job in a row that the API server may fail (busy, restarting) before the step does


@dataclass(frozen=True)
class TrainJobSettings:
    """How the launcher creates the TrainJob: fixed when the flavour is compiled."""

    image: str  # the pipeline's image: the nodes run the same program as the step
    claim: str  # the ReadWriteMany PersistentVolumeClaim every node and the launcher mount
    mount_path: str  # where they mount it
    runtime: str = "torch-distributed"  # the ClusterTrainingRuntime of the nodes
    resources: dict[str, str] = field(default_factory=dict)  # limits of each node: GPUs, CPU, memory
    namespace: str = ""  # "": the launcher's own (its service account's)
    poll_seconds: float = 15.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "TrainJobSettings | None":
        text = environ.get(TRAIN_JOB_VARIABLE)
        return cls(**json.loads(text)) if text else None

    def as_environment(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def train_job_body(name: str, settings: TrainJobSettings, nodes: int, request: str,
                   owner: dict | None = None) -> dict:
    """The TrainJob that runs `request` on `nodes` machines, each mounting the shared volume (and a memory-backed
    /dev/shm, which NCCL needs more of than a pod's default 64 MB), without Istio's sidecar (which would keep a
    finished node running). The volumes come as a runtime patch (Kubeflow Trainer 2.2 and later). `owner`: the
    launcher's pod, whose deletion (a cancelled run) deletes the job too."""
    pod_spec = {
        "volumes": [{"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": settings.claim}},
                    {"name": SHARED_MEMORY_VOLUME, "emptyDir": {"medium": "Memory"}}],
        "containers": [{"name": TRAINER_CONTAINER,
                        "volumeMounts": [{"name": VOLUME_NAME, "mountPath": settings.mount_path},
                                         {"name": SHARED_MEMORY_VOLUME, "mountPath": "/dev/shm"}]}],
    }
    node_patch = {"name": TRAINER_CONTAINER, "template": {"spec": {"template": {
        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": pod_spec}}}}
    metadata = {"name": name, "labels": {"app.kubernetes.io/part-of": PATCH_MANAGER}}
    if owner:
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", **owner}]
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TrainJob",
        "metadata": metadata,
        "spec": {
            "runtimeRef": {"name": settings.runtime},
            "trainer": {
                "image": settings.image,
                "command": ["python", "-m", __name__, request],
                "numNodes": nodes,
                **({"resourcesPerNode": {"limits": settings.resources}} if settings.resources else {}),
            },
            "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {
                "template": {"spec": {"replicatedJobs": [node_patch]}}}}],
        },
    }


def _on_volume(path: str, settings: TrainJobSettings) -> bool:
    return Path(path).resolve().is_relative_to(Path(settings.mount_path).resolve())


def stage_arguments(kwargs: dict[str, Any], folder: Path, settings: TrainJobSettings) -> tuple[dict, dict]:
    """The training function's arguments as the nodes see them (paths on the shared volume, under `folder`), and
    the output folders to copy back: {argument: local folder}."""
    staged, outputs = {}, {}
    for name, value in kwargs.items():
        if not isinstance(value, str) or not value or _on_volume(value, settings):
            staged[name] = value
            continue
        target = folder / name
        if name.endswith("_dir"):
            outputs[name] = value
            if os.path.isdir(value):
                shutil.copytree(value, target)
            target.mkdir(parents=True, exist_ok=True)
        elif os.path.isdir(value):
            shutil.copytree(value, target)
        elif os.path.isfile(value):
            target.mkdir(parents=True)
            target = target / os.path.basename(value)
            shutil.copy2(value, target)
        else:  # not a local path: a hub name, a gs:// URI
            staged[name] = value
            continue
        staged[name] = str(target)
    return staged, outputs


def _namespace(settings: TrainJobSettings) -> str:
    if settings.namespace:
        return settings.namespace
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return "default"


def _custom_objects():
    """The cluster's API as the launcher's service account (in a pod), or as the kubeconfig says elsewhere
    (KUBECONFIG, read now: the client reads it once, when imported)."""
    from kubernetes import client, config

    if "KUBERNETES_SERVICE_HOST" in os.environ and "KUBECONFIG" not in os.environ:
        config.load_incluster_config()
    else:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return client.CustomObjectsApi()


def _ending(job: dict) -> tuple[str, str] | None:
    """(condition, message) once the TrainJob has completed or failed; None while it runs."""
    for condition in job.get("status", {}).get("conditions", []):
        if condition.get("type") in (COMPLETE, FAILED) and condition.get("status") == "True":
            return condition["type"], condition.get("message", "")
    return None


def _wait_for(api, namespace: str, name: str, poll_seconds: float) -> tuple[str, str]:
    """The TrainJob's ending (condition, message), read every `poll_seconds`; an API server that does not answer
    a few reads in a row (MISSED_READS) fails the wait."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    missed = 0
    while True:
        try:
            ending = _ending(api.get_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, name))
            missed = 0
        except (ApiException, HTTPError) as error:
            transient = not isinstance(error, ApiException) or error.status in (429, 500, 502, 503, 504)
            missed += 1
            if not transient or missed >= MISSED_READS:
                raise
            ending = None
        if ending is not None:
            return ending
        time.sleep(poll_seconds)


def _launcher_pod() -> dict | None:
    name, uid = os.environ.get(POD_NAME_VARIABLE), os.environ.get(POD_UID_VARIABLE)
    return {"name": name, "uid": uid} if name and uid else None


def run_as_train_job(function: Callable[..., Any], config: Any, *, replica_count: int, settings: TrainJobSettings,
                     **kwargs: Any) -> Any:
    """`function(config, **kwargs)` on `replica_count` machines of a TrainJob; the first machine's result.

    Whatever happens, the staged files leave the volume, the output folders (checkpoints included, so that a
    retry resumes) come back, and a job that did not fail is deleted; a failed one is kept for its logs."""
    from kubernetes.client.exceptions import ApiException

    from components.common.distributed import write_request

    gpus = sum(int(count) for resource, count in settings.resources.items() if resource.endswith("/gpu"))
    config.validate(max(gpus, 1) * replica_count)  # one clear error here rather than one per process on the nodes
    api, namespace = _custom_objects(), _namespace(settings)
    name = f"rlhf-{uuid.uuid4().hex[:12]}"
    folder = Path(settings.mount_path) / "train-jobs" / name
    folder.mkdir(parents=True)
    created = failed = False
    outputs: dict[str, str] = {}
    try:
        staged, outputs = stage_arguments(kwargs, folder, settings)
        request, result = folder / "request.json", folder / "result.json"
        write_request(request, function, config, staged, result, replica_count=replica_count)
        body = train_job_body(name, settings, replica_count, str(request), owner=_launcher_pod())
        try:
            api.create_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, body,
                                                field_validation="Strict")
        except ApiException as error:
            raise RuntimeError(f"Kubernetes refused the TrainJob {namespace}/{name}: {error.status} {error.reason} "
                               f"({error.body}); it needs Kubeflow Trainer 2.2 or later, and the pipeline's service "
                               f"account needs to create trainjobs ({API_GROUP}) in {namespace}") from None
        created = True
        print(f"training on {replica_count} machines: TrainJob {namespace}/{name} (runtime {settings.runtime}), "
              f"files under {folder}", flush=True)
        condition, message = _wait_for(api, namespace, name, settings.poll_seconds)
        if condition == FAILED:
            failed = True
            raise RuntimeError(f"TrainJob {namespace}/{name} failed: {message or 'no message'}; its nodes' logs hold "
                               f"the error (kubectl logs -n {namespace} -l jobset.sigs.k8s.io/jobset-name={name})")
        return json.loads(result.read_text())
    finally:
        for argument, local in outputs.items():
            if (folder / argument).is_dir():
                shutil.copytree(folder / argument, local, dirs_exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        if created and not failed:
            try:
                api.delete_namespaced_custom_object(API_GROUP, API_VERSION, namespace, PLURAL, name)
            except ApiException as error:
                print(f"TrainJob {namespace}/{name} could not be deleted ({error.status} {error.reason}); "
                      f"kubectl delete trainjob -n {namespace} {name}", flush=True)


def _run_on_this_node(request_path: str) -> None:
    """A TrainJob node's program: the step's training function across the job's nodes (torchrun), the first
    node writing its result for the launcher."""
    from components.common.distributed import read_request, run_on_every_gpu

    function, config, request = read_request(request_path)
    result = run_on_every_gpu(function, config, replica_count=request["replica_count"], **request["kwargs"])
    Path(request["result"]).write_text(json.dumps(result))  # the other nodes end inside run_on_every_gpu


if __name__ == "__main__":
    _run_on_this_node(sys.argv[1])
