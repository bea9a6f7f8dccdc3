"""The sample tasks' tiny models as the pipeline's built-in models (registered in pyproject.toml under
`rlhf_pipeline.builtin_models`, components/common/registry.py)."""

from pathlib import Path

from components.common.registry import BuiltinModel


def _tiny_summarizer(output_dir: Path, seed: int) -> Path:
    from embedded_default.tiny_model import build_tiny_model

    return build_tiny_model(output_dir, seed=seed)


def _tiny_arithmetic(output_dir: Path, seed: int) -> Path:
    from embedded_default.arithmetic.tiny_model import build_tiny_arithmetic_model

    return build_tiny_arithmetic_model(output_dir, seed=seed)


TINY_SUMMARIZER = BuiltinModel("tiny causal LM of the embedded sample task, built offline", _tiny_summarizer)
TINY_ARITHMETIC = BuiltinModel("tiny chat model of the embedded arithmetic task, built offline", _tiny_arithmetic)
