"""Compiling the DAG to the YAML spec that Vertex AI Pipelines and Kubeflow run."""

from pathlib import Path

from kfp import compiler

from pipeline.dag import build_pipeline
from pipeline.image import DEFAULT_IMAGE
from pipeline.kubeflow_train_jobs import TrainJobPlacement
from pipeline.vertex_custom_jobs import WorkerPools


def compile_pipeline(output: str | Path, image: str = DEFAULT_IMAGE, worker_pools: WorkerPools | None = None,
                     train_jobs: TrainJobPlacement | None = None) -> Path:
    """Write the pipeline spec for components running in `image` to `output`; with `worker_pools`, the
    Vertex AI flavour whose training steps run as custom jobs on those machines; with `train_jobs`, the
    Kubeflow flavour whose training steps launch TrainJobs of those nodes."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image, worker_pools=worker_pools, train_jobs=train_jobs), str(output))
    return output
