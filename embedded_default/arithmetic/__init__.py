r"""The second sample task: word problems with small integer answers, and the tiny chat model built for it.

`large_model_reference: builtin:tiny-arithmetic` selects the tiny chat model (a Llama with a word-level
tokenizer and a chat template) that `embedded_default.arithmetic.tiny_model.build_tiny_arithmetic_model`
builds and warms up in well under a minute on a CPU. The data under `data/` is written by
`python -m embedded_default.arithmetic.generate`: prompts as conversations (a system message asking for
the final answer in `\boxed{}`, then the question) with a `ground_truth` column, as in the GSM8K
notebooks, and a small preference file (a right and a wrong answer to each problem) for a reward model
or DPO/KTO. `params.yaml` holds the pipeline parameter values of the task: GRPO with the `boxed-answer`
reward function alone (no preference data: no reward model is trained).
"""

from pathlib import Path

from embedded_default.sample_task import SampleTask

BUILTIN_MODEL_REFERENCE = "builtin:tiny-arithmetic"
REWARD_FUNCTION = "boxed-answer"

TASK = SampleTask("arithmetic", Path(__file__).resolve().parent)
DATA_DIR, PREFERENCE_FILE, PROMPT_FILE, EVAL_FILE = TASK.data_dir, TASK.preference_file, TASK.prompt_file, TASK.eval_file
load_params = TASK.load_params
