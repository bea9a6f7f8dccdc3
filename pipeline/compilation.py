"""Compiling the DAG to the YAML spec that Vertex AI Pipelines and Kubeflow run."""

from pathlib import Path

from kfp import compiler

from pipeline.dag import build_pipeline
from pipeline.image import DEFAULT_IMAGE


def compile_pipeline(output: str | Path, image: str = DEFAULT_IMAGE) -> Path:
    """Write the pipeline spec for components running in `image` to `output`."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), str(output))
    return output
