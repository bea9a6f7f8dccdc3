r"""The second sample task: word problems with small integer answers, and the tiny chat model built for it.

`large_model_reference: builtin:tiny-arithmetic` selects the tiny chat model (a Llama with a word-level
tokenizer and a chat template) that `embedded_default.arithmetic.tiny_model.build_tiny_arithmetic_model`
builds and warms up in well under a minute on a CPU. The data under `data/` is written by
`python -m embedded_default.arithmetic.generate`: prompts as conversations (a system message asking for
the final answer in `\boxed{}`, then the question) with a `ground_truth` column, as in the GSM8K
notebooks, and a small preference file (a right and a wrong answer to each problem) for the reward-model
stage. `params.yaml` holds the pipeline parameter values of the task: GRPO with the `boxed-answer`
reward function.
"""

from pathlib import Path

import yaml

BUILTIN_MODEL_REFERENCE = "builtin:tiny-arithmetic"
REWARD_FUNCTION = "boxed-answer"

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
PREFERENCE_FILE = DATA_DIR / "preference.jsonl"
PROMPT_FILE = DATA_DIR / "prompts.jsonl"
EVAL_FILE = DATA_DIR / "eval.jsonl"
PARAMS_FILE = PACKAGE_DIR / "params.yaml"


def load_params() -> dict:
    """The pipeline parameter values of the arithmetic task (dataset paths excluded)."""
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
