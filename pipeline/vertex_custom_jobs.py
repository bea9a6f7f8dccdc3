"""The Vertex AI flavour of the pipeline whose training steps span several machines.

With `replica_count` above 1, `rlhf-pipeline submit --target vertex` compiles the pipeline again with each
training step (supervised fine-tuning, reward model, RL, DPO/KTO) turned into a Vertex AI custom job by
Google's own `create_custom_training_job_from_component` (google-cloud-pipeline-components): worker pool 0
holds the primary machine and worker pool 1 the other `replica_count - 1`, all of one machine type, each
running the step's own program. Vertex tells each machine its place in `CLUSTER_SPEC`, from which the step
starts torchrun across the machines (components/common/distributed.py). A custom job names its machine
type, which a pipeline parameter cannot choose at run time, so this flavour is compiled per submission, when
the accelerator and the counts are known; it cannot run locally, and compile.py's template keeps running
each step on one machine.
"""

from dataclasses import dataclass
from typing import Any

from components.common.errors import UserInputError
from components.common.vertex_placeholders import LOCATION_PLACEHOLDER, PROJECT_PLACEHOLDER

TRAINING_STEPS = ("sft", "reward", "policy", "preference_tuning")  # pipeline/dag.py's names of the training steps
SERVICE_ACCOUNT_PLACEHOLDER = "{{$.pipeline_service_account}}"  # the pipeline job's own (Vertex's default if unset)
NETWORK_PLACEHOLDER = "{{$.pipeline_network}}"  # the pipeline job's own (none if unset)
# Inputs of every custom job task beyond the step's own: where the job runs, the pipeline job's project and
# region (whatever the `project` and `location` parameters say for uploads).
CUSTOM_JOB_INPUTS = {"project": PROJECT_PLACEHOLDER, "location": LOCATION_PLACEHOLDER}
BOOT_DISK_GB = 200  # the image, a model download and its merged copy

# Compute Engine machine types with a given number of each GPU, as Vertex AI custom training accepts them
# (Compute Engine's GPU machine types: A2 Standard/Ultra, A3 High/Mega/Ultra, A4, G2, N1 with attached GPUs).
# The smaller A3 High machines (1, 2 or 4 H100) exist only as Spot or flex-start capacity, so they are left out.
MACHINE_TYPES: dict[str, dict[int, str]] = {
    "NVIDIA_TESLA_A100": {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g",
                          16: "a2-megagpu-16g"},
    "NVIDIA_A100_80GB": {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"},
    "NVIDIA_H100_80GB": {8: "a3-highgpu-8g"},
    "NVIDIA_H100_MEGA_80GB": {8: "a3-megagpu-8g"},
    "NVIDIA_H200_141GB": {8: "a3-ultragpu-8g"},
    "NVIDIA_B200": {8: "a4-highgpu-8g"},
    "NVIDIA_L4": {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
    "NVIDIA_TESLA_V100": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32", 8: "n1-standard-64"},
    "NVIDIA_TESLA_T4": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_P100": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
}


@dataclass(frozen=True)
class WorkerPools:
    """The machines of every training step: `replica_count` machines of `machine_type`, each with
    `accelerator_count` GPUs of `accelerator_type`."""

    replica_count: int
    accelerator_type: str
    accelerator_count: int
    machine_type: str

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "WorkerPools":
        """From the submission's parameter values (accelerator_type already a Vertex name)."""
        accelerator, count = values["accelerator_type"], values["accelerator_count"]
        machines = MACHINE_TYPES.get(accelerator)
        if machines is None:
            raise UserInputError(
                f"replica_count {values['replica_count']}: no Vertex machine type is known here for {accelerator}; "
                f"the training steps can span machines of {', '.join(MACHINE_TYPES)}")
        if count not in machines:
            raise UserInputError(
                f"replica_count {values['replica_count']}: Vertex machines with {accelerator} hold "
                f"{' or '.join(str(n) for n in machines)} of them, not accelerator_count {count} "
                f"({', '.join(f'{n}: {name}' for n, name in machines.items())})")
        return cls(values["replica_count"], accelerator, count, machines[count])

    def describe(self) -> str:
        return (f"{self.replica_count} x {self.machine_type} ({self.accelerator_count} x {self.accelerator_type} "
                "each)")

    def custom_job(self, component):
        """`component` as a custom job on these machines, run as the pipeline job's service account in its
        network; its project and region are the pipeline job's. A machine that Vertex restarts restarts them
        all (torchrun's rendezvous is fixed)."""
        from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component

        return create_custom_training_job_from_component(
            component, replica_count=self.replica_count, machine_type=self.machine_type,
            accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count,
            boot_disk_size_gb=BOOT_DISK_GB, service_account=SERVICE_ACCOUNT_PLACEHOLDER, network=NETWORK_PLACEHOLDER,
            restart_job_on_worker_restart=True,
        )
