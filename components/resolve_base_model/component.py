"""KFP wrapper of the base-model resolution stage."""

from kfp.dsl import Model, Output


def resolve_base_model(
    large_model_reference: str,
    seed: int,
    code_version: str,
    model: Output[Model],
) -> str:
    """Resolve `large_model_reference` into a Model artifact (the model itself or a reference to it)."""
    from components.common.models import materialize_base_model

    resolved = materialize_base_model(large_model_reference, model.path, seed)
    model.metadata["kind"] = resolved.kind
    model.metadata["name_or_path"] = resolved.name_or_path
    print(f"base model: {resolved.description}")
    return resolved.name_or_path
