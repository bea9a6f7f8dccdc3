"""Accelerators, CPU and memory of the training steps.

`accelerator_type` is a pipeline parameter (tunable in the Vertex AI console) and reaches each
training task's resource spec through `apply_training_resources`. The accepted values:

- 'GPU': the documented default of the platform the job goes to. On Vertex AI it becomes
  NVIDIA_TESLA_A100 (40 GB: the GPU Vertex's own RLHF pipeline uses; enough for LoRA tuning of
  models up to about 7B parameters in bf16); pick NVIDIA_L4 (24 GB) for small models or
  NVIDIA_A100_80GB / NVIDIA_H100_80GB for large ones. On a self-hosted Kubeflow it becomes the
  Kubernetes resource `nvidia.com/gpu`. `rlhf-pipeline submit` makes this substitution, because a
  pipeline cannot compute on its parameters before placing a task; a run started from the console
  must name the accelerator itself.
- an explicit Vertex accelerator name (NVIDIA_L4, NVIDIA_TESLA_A100, NVIDIA_H100_80GB, ...),
  passed through to Vertex AI;
- a Kubernetes extended resource name (`nvidia.com/gpu`), passed through to Kubeflow.
TPUs are refused: the trainers are PyTorch programs for CUDA devices.
"""

import functools

GPU = "GPU"
TPU = "TPU"
VERTEX, KUBEFLOW = "vertex", "kfp"
DEFAULT_VERTEX_GPU = "NVIDIA_TESLA_A100"
KUBERNETES_GPU = "nvidia.com/gpu"
DEFAULT_ACCELERATOR_COUNT = 1
DEFAULT_REPLICA_COUNT = 1  # machines per training step
DEFAULT_CPU_LIMIT = "8"
DEFAULT_MEMORY_LIMIT = "32G"
# Memory of one GPU of each Vertex accelerator type, in GiB, as NVIDIA's product pages give it (the
# "40GB" of an A100 is 40 GiB of HBM; nvidia-smi shows slightly less as "total").
ACCELERATOR_MEMORY_GIB: dict[str, int] = {
    "NVIDIA_TESLA_K80": 12,
    "NVIDIA_TESLA_P4": 8,
    "NVIDIA_TESLA_P100": 16,
    "NVIDIA_TESLA_V100": 16,
    "NVIDIA_TESLA_T4": 16,
    "NVIDIA_L4": 24,
    "NVIDIA_TESLA_A100": 40,
    "NVIDIA_A100_80GB": 80,
    "NVIDIA_H100_80GB": 80,
    "NVIDIA_H100_MEGA_80GB": 80,
    "NVIDIA_RTX_PRO_6000": 96,
    "NVIDIA_H200_141GB": 141,
    "NVIDIA_B200": 180,
    "NVIDIA_GB200": 186,
}
_TPU_MESSAGE = ("TPUs are not supported: the trainers are PyTorch programs for NVIDIA GPUs; use 'GPU' or "
                "a Vertex accelerator name such as NVIDIA_L4 or NVIDIA_TESLA_A100")


@functools.cache
def vertex_gpu_names() -> tuple[str, ...]:
    """Every NVIDIA accelerator Vertex AI knows, from the installed Vertex SDK."""
    from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType

    return tuple(sorted(a.name for a in AcceleratorType if a.name.startswith("NVIDIA_")))


def _is_kubernetes_resource(value: str) -> bool:
    return "/" in value and " " not in value


def accelerator_problem(value: str) -> str | None:
    """Why `value` cannot be an accelerator_type, or None when it can."""
    if value.upper() == GPU or _is_kubernetes_resource(value):
        return None
    if value.upper() == TPU or value.upper().startswith(TPU + "_"):
        return f"'{value}': {_TPU_MESSAGE}"
    if value not in vertex_gpu_names():
        return (f"'{value}' is not an accelerator: expected 'GPU', a Vertex accelerator name "
                f"({', '.join(vertex_gpu_names())}) or a Kubernetes resource such as {KUBERNETES_GPU}")
    return None


def accelerator_for_target(value: str, target: str) -> str:
    """The accelerator name that `target` understands for a valid `accelerator_type` value."""
    from components.common.errors import UserInputError

    if value.upper() == GPU:
        return DEFAULT_VERTEX_GPU if target == VERTEX else KUBERNETES_GPU
    if target == VERTEX and _is_kubernetes_resource(value):
        raise UserInputError(f"accelerator_type '{value}' is a Kubernetes resource; Vertex AI takes 'GPU' or "
                             "a Vertex accelerator name such as NVIDIA_L4")
    if target == KUBEFLOW and not _is_kubernetes_resource(value):
        raise UserInputError(f"accelerator_type '{value}' is a Vertex AI name; a Kubeflow cluster takes 'GPU' "
                             f"or a Kubernetes resource such as {KUBERNETES_GPU}")
    return value


def apply_training_resources(task, accelerator_type, accelerator_count, cpu_limit, memory_limit):
    """Give a training task its accelerator, CPU and memory limits (pipeline parameters or constants).

    kfp.local ignores these settings; Vertex AI picks a machine type that satisfies them. The settings
    that are pipeline parameters are registered as the task's inputs: kfp 2.17 writes them into the
    container's resources only, so a task inside a dsl.If branch would not get them passed down.
    """
    from kfp.dsl.pipeline_channel import PipelineChannel

    settings = (accelerator_type, accelerator_count, cpu_limit, memory_limit)
    task.register_pipeline_channels([value for value in settings if isinstance(value, PipelineChannel)])
    return (
        task.set_accelerator_type(accelerator_type)
        .set_accelerator_limit(accelerator_count)
        .set_cpu_limit(cpu_limit)
        .set_memory_limit(memory_limit)
    )
