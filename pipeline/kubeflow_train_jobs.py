"""The Kubeflow flavour of the pipeline whose training steps span several machines.

With `replica_count` above 1, `rlhf-pipeline submit --target kfp --shared-volume CLAIM` compiles the pipeline
again with each training step (supervised fine-tuning, reward model, RL, DPO/KTO) made a launcher: its pod
mounts the ReadWriteMany PersistentVolumeClaim CLAIM (kfp-kubernetes) and is told, in its environment, how to
create a Kubeflow Trainer TrainJob of `replica_count` nodes on the cluster's torch runtime, each node with the
step's GPUs, CPU and memory, running the step's own training function; the launcher stages the files on the
volume, waits for the job and copies the outputs back (components/common/train_jobs.py). The launcher itself
takes no GPU. The nodes' resources are fixed when the flavour is compiled, as the Vertex flavour's machine
type is (pipeline/vertex_custom_jobs.py), so it is compiled per submission; compile.py's template keeps
running each step on one machine.

The cluster needs Kubeflow Trainer 2.2 or later (its runtime patches carry the volumes) with a ClusterTrainingRuntime for torch (`torch-distributed` is the
one it installs), the claim in the run's namespace, and RBAC for the pipeline's service account to create,
get and delete `trainjobs.trainer.kubeflow.org` there.
"""

from dataclasses import dataclass
from typing import Any

from components.common.train_jobs import POD_NAME_VARIABLE, POD_UID_VARIABLE, TRAIN_JOB_VARIABLE, TrainJobSettings

MOUNT_PATH = "/mnt/rlhf-shared"  # where the launcher and the nodes mount the shared volume
DEFAULT_RUNTIME = "torch-distributed"  # Kubeflow Trainer's ClusterTrainingRuntime for PyTorch
LAUNCHER_CPU_LIMIT, LAUNCHER_MEMORY_LIMIT = "2", "8G"  # it copies files and waits


@dataclass(frozen=True)
class TrainJobPlacement:
    """The nodes of every training step: `replica_count` of them, each with `resources` (limits), sharing `claim`."""

    replica_count: int
    claim: str
    image: str
    resources: dict[str, str]
    runtime: str = DEFAULT_RUNTIME

    @classmethod
    def from_values(cls, values: dict[str, Any], *, claim: str, image: str, runtime: str) -> "TrainJobPlacement":
        """From the submission's parameter values (accelerator_type already a Kubernetes resource name)."""
        resources = {values["accelerator_type"]: str(values["accelerator_count"]), "cpu": str(values["cpu_limit"]),
                     "memory": str(values["memory_limit"])}
        return cls(values["replica_count"], claim, image, resources, runtime)

    def settings(self) -> TrainJobSettings:
        return TrainJobSettings(image=self.image, claim=self.claim, mount_path=MOUNT_PATH, runtime=self.runtime,
                                resources=self.resources)

    def launcher(self, task):
        """`task` (a training step) as the launcher of its TrainJob."""
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=self.claim, mount_path=MOUNT_PATH)
        kubernetes.use_field_path_as_env(task, POD_NAME_VARIABLE, "metadata.name")  # the job's owner: a cancelled
        kubernetes.use_field_path_as_env(task, POD_UID_VARIABLE, "metadata.uid")  # run's pod takes its job along
        task.set_env_variable(TRAIN_JOB_VARIABLE, self.settings().as_environment())
        return task.set_cpu_limit(LAUNCHER_CPU_LIMIT).set_memory_limit(LAUNCHER_MEMORY_LIMIT)

    def describe(self) -> str:
        limits = ", ".join(f"{name} {value}" for name, value in self.resources.items())
        return (f"{self.replica_count} nodes of a Kubeflow Trainer TrainJob (runtime {self.runtime}; {limits} each), "
                f"sharing files on the volume {self.claim}")
