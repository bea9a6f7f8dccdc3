"""KFP wrapper of the preference-data stage (pipeline/dag.py turns it into a component)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def prepare_preference_data(
    preference_dataset: str,
    eval_dataset: str,
    instruction: str,
    system_prompt: str,
    prompt_sequence_length: int,
    target_sequence_length: int,
    batch_size: int,
    reward_model_train_epochs: int,
    reward_model_train_steps: int,
    algorithm: str,
    reinforcement_learning_train_epochs: int,
    reinforcement_learning_train_steps: int,
    eval_split_fraction: float,
    seed: int,
    code_version: str,
    base_model: Input[Model],
    preference_data: Output[Dataset],
    data_report: Output[Markdown],
    max_bad_row_fraction: float,
    length_policy: str,
    dataset_format: str,
    use_chat_template: str,
    preference_data_fingerprint: str,
) -> NamedTuple(
    "Outputs",
    [("train_rows", int), ("eval_rows", int), ("reward_model_train_steps", int), ("preference_tuning_train_steps", int)],
):
    """Validates the preference pairs and writes train.jsonl / eval.jsonl, rejects, accounting and a report.

    preference_tuning_train_steps are DPO/KTO's steps over the pairs, derived as the reward model's are
    (from reinforcement_learning_train_epochs unless reinforcement_learning_train_steps is set)."""
    # preference_data_fingerprint is read by nothing here: it puts the data's contents into the step's cache
    # key, so that a dataset edited in place reruns the step (cli/fingerprint.py).
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    from collections import namedtuple

    from components.common.stage_settings import settings_from_arguments
    from components.prepare_preference_data.stage import PreferenceDataConfig, run

    config = settings_from_arguments(PreferenceDataConfig, arguments, eval_dataset=eval_dataset or None,
                                    instruction=instruction or None)
    result = run(config, base_model.path, preference_data.path, data_report.path)
    outputs = namedtuple(
        "Outputs", ["train_rows", "eval_rows", "reward_model_train_steps", "preference_tuning_train_steps"]
    )
    return outputs(
        result.train_rows, result.eval_rows, result.reward_model_train_steps, result.preference_tuning_train_steps
    )
