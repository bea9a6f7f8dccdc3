import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory) -> Path:
    """A tiny random Llama causal LM with a word-level tokenizer, saved once per session."""
    from tiny_models import build_causal_lm

    return build_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))


@pytest.fixture(scope="session")
def length_reward_model(tmp_path_factory) -> Path:
    """A GPT-2 reward model whose score falls with the number of tokens (tiny_models.length_score)."""
    from tiny_models import build_length_reward_model

    return build_length_reward_model(tmp_path_factory.mktemp("length-rm"))
