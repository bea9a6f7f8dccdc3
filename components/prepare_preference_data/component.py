"""KFP wrapper of the preference-data stage (pipeline/dag.py turns it into a component)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def prepare_preference_data(
    preference_dataset: str,
    eval_dataset: str,
    instruction: str,
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
    max_bad_row_fraction: float = 0.01,
    length_policy: str = "truncate",
    dataset_format: str = "auto",
    use_chat_template: str = "auto",
    dataset_fingerprint: str = "",
) -> NamedTuple(
    "Outputs",
    [("train_rows", int), ("eval_rows", int), ("reward_model_train_steps", int), ("preference_tuning_train_steps", int)],
):
    """Validates the preference pairs and writes train.jsonl / eval.jsonl, rejects, accounting and a report.

    preference_tuning_train_steps are DPO/KTO's steps over the pairs, derived as the reward model's are
    (from reinforcement_learning_train_epochs unless reinforcement_learning_train_steps is set)."""
    # dataset_fingerprint is read by nothing here: it puts the data's contents into the step's cache
    # key, so that a dataset edited in place reruns the step (cli/fingerprint.py).
    from collections import namedtuple

    from components.prepare_preference_data.stage import PreferenceDataConfig, run

    config = PreferenceDataConfig(
        preference_dataset=preference_dataset,
        eval_dataset=eval_dataset or None,
        instruction=instruction or None,
        prompt_sequence_length=prompt_sequence_length,
        target_sequence_length=target_sequence_length,
        batch_size=batch_size,
        reward_model_train_epochs=reward_model_train_epochs,
        reward_model_train_steps=reward_model_train_steps,
        algorithm=algorithm,
        reinforcement_learning_train_epochs=reinforcement_learning_train_epochs,
        reinforcement_learning_train_steps=reinforcement_learning_train_steps,
        eval_split_fraction=eval_split_fraction,
        seed=seed,
        max_bad_row_fraction=max_bad_row_fraction,
        length_policy=length_policy,
        dataset_format=dataset_format,
        use_chat_template=use_chat_template,
    )
    result = run(config, base_model.path, preference_data.path, data_report.path)
    outputs = namedtuple(
        "Outputs", ["train_rows", "eval_rows", "reward_model_train_steps", "preference_tuning_train_steps"]
    )
    return outputs(
        result.train_rows, result.eval_rows, result.reward_model_train_steps, result.preference_tuning_train_steps
    )
