"""The bundled sample task (short posts to summarise) and the tiny model built for it offline.

`large_model_reference: builtin:tiny-summarizer` selects the tiny causal LM that
`embedded_default.tiny_model.build_tiny_model` trains in under a minute on a CPU; the data files
under `data/` are written by `python -m embedded_default.generate`, and `params.yaml` holds the
pipeline parameter values that make the whole pipeline run on them in minutes.
"""

from pathlib import Path

from embedded_default.sample_task import SampleTask

BUILTIN_MODEL_REFERENCE = "builtin:tiny-summarizer"

TASK = SampleTask("summaries", Path(__file__).resolve().parent)
DATA_DIR, PREFERENCE_FILE, PROMPT_FILE, EVAL_FILE = TASK.data_dir, TASK.preference_file, TASK.prompt_file, TASK.eval_file
load_params = TASK.load_params
