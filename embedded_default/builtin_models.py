"""The sample tasks' tiny models as the pipeline's built-in models (registered in pyproject.toml under
`rlhf_pipeline.builtin_models`, components/common/registry.py)."""

from pathlib import Path

from components.common.registry import BuiltinModel


def _tiny_summarizer(output_dir: Path, seed: int) -> Path:
    from embedded_default.tiny_model import build_tiny_model

    return build_tiny_model(output_dir, seed=seed)


def _tiny_summarizer_architecture() -> dict:
    """Its sizes, with the vocabulary the tokenizer's training aims at (the built one has at most that many)."""
    from embedded_default.tiny_model import TinyModelConfig, architecture

    config = TinyModelConfig()
    return architecture(config, config.vocab_size)


def _tiny_arithmetic(output_dir: Path, seed: int) -> Path:
    from embedded_default.arithmetic.tiny_model import build_tiny_arithmetic_model

    return build_tiny_arithmetic_model(output_dir, seed=seed)


def _tiny_arithmetic_architecture() -> dict:
    from embedded_default.arithmetic.tiny_model import ArithmeticModelConfig, build_tokenizer, task_texts
    from embedded_default.tiny_model import architecture

    return architecture(ArithmeticModelConfig(), len(build_tokenizer(task_texts())))


TINY_SUMMARIZER = BuiltinModel("tiny causal LM of the embedded sample task, built offline", _tiny_summarizer,
                               _tiny_summarizer_architecture)
TINY_ARITHMETIC = BuiltinModel("tiny chat model of the embedded arithmetic task, built offline", _tiny_arithmetic,
                               _tiny_arithmetic_architecture)
