"""Lets kfp.local run a DAG that picks an artifact with `dsl.OneOf`, as pipeline/dag.py does.

kfp 2.17's local orchestrator resolves a `dsl.OneOf` of parameters (the output of whichever branch
ran) but refuses one of artifacts ("Expected 1 artifact in ArtifactSelectorSpec. Got: 2"), which
Vertex AI and Kubeflow resolve. `enable_artifact_oneof()` gives the local orchestrator the same rule
for artifacts that it already applies to parameters: of the selectors, exactly one producer ran.
"""

from kfp.local import io
from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils



def _dag_output_artifacts(cls, dag_outputs_spec, io_store: io.IOStore) -> dict:
    outputs = {}
    for key, spec in dag_outputs_spec.artifacts.items():
        found = []
        for selector in spec.artifact_selectors:
            try:
                found.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
            except (KeyError, ValueError):  # that branch did not run
                continue
        if len(found) != 1:
            raise ValueError(f"dsl.OneOf output {key!r}: {len(found)} of the branches produced it, expected 1")
        outputs[key] = found[0]
    return outputs


def enable_artifact_oneof() -> None:
    """Install the rule in this process's kfp.local (idempotent)."""
    OrchestratorUtils.get_dag_output_artifacts = classmethod(_dag_output_artifacts)
