"""The bundled sample task (short posts to summarise) and the tiny model built for it offline.

`large_model_reference: builtin:tiny-summarizer` selects the tiny causal LM that
`embedded_default.tiny_model.build_tiny_model` trains in under a minute on a CPU; the data files
under `data/` are written by `python -m embedded_default.generate`, and `params.yaml` holds the
pipeline parameter values that make the whole pipeline run on them in minutes.
"""

from pathlib import Path

import yaml

BUILTIN_MODEL_REFERENCE = "builtin:tiny-summarizer"

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
PREFERENCE_FILE = DATA_DIR / "preference.jsonl"
PROMPT_FILE = DATA_DIR / "prompts.jsonl"
EVAL_FILE = DATA_DIR / "eval.jsonl"
PARAMS_FILE = PACKAGE_DIR / "params.yaml"


def load_params() -> dict:
    """The pipeline parameter values of the sample task (dataset paths excluded)."""
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
