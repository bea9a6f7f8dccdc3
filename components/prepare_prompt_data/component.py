"""KFP wrapper of the prompt-data stage (pipeline/dag.py turns it into a component)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def prepare_prompt_data(
    prompt_dataset: str,
    eval_dataset: str,
    instruction: str,
    system_prompt: str,
    prompt_sequence_length: int,
    batch_size: int,
    reinforcement_learning_train_epochs: int,
    reinforcement_learning_train_steps: int,
    eval_split_fraction: float,
    max_eval_prompts: int,
    seed: int,
    code_version: str,
    base_model: Input[Model],
    prompt_data: Output[Dataset],
    data_report: Output[Markdown],
    max_bad_row_fraction: float,
    length_policy: str,
    use_chat_template: str,
    algorithm: str,
    num_generations: int,
    prompt_data_fingerprint: str,
) -> NamedTuple("Outputs", [("train_rows", int), ("eval_rows", int), ("reinforcement_learning_train_steps", int)]):
    """Validates the prompts and writes train.jsonl / eval.jsonl, rejects, accounting and a report."""
    # prompt_data_fingerprint is read by nothing here: it puts the data's contents into the step's cache
    # key, so that a dataset edited in place reruns the step (cli/fingerprint.py).
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    from collections import namedtuple

    from components.common.stage_settings import settings_from_arguments
    from components.prepare_prompt_data.stage import PromptDataConfig, run

    config = settings_from_arguments(PromptDataConfig, arguments, eval_dataset=eval_dataset or None,
                                    instruction=instruction or None)
    result = run(config, base_model.path, prompt_data.path, data_report.path)
    outputs = namedtuple("Outputs", ["train_rows", "eval_rows", "reinforcement_learning_train_steps"])
    return outputs(result.train_rows, result.eval_rows, result.reinforcement_learning_train_steps)
