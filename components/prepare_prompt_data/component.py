"""KFP wrapper of the prompt-data stage (pipeline/dag.py turns it into a component)."""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Model, Output


def prepare_prompt_data(
    prompt_dataset: str,
    eval_dataset: str,
    instruction: str,
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
    max_bad_row_fraction: float = 0.01,
    length_policy: str = "truncate",
    use_chat_template: str = "auto",
    algorithm: str = "ppo",
    num_generations: int = 4,
    dataset_fingerprint: str = "",
) -> NamedTuple("Outputs", [("train_rows", int), ("eval_rows", int), ("reinforcement_learning_train_steps", int)]):
    """Validates the prompts and writes train.jsonl / eval.jsonl, rejects, accounting and a report."""
    # dataset_fingerprint is read by nothing here: it puts the data's contents into the step's cache
    # key, so that a dataset edited in place reruns the step (cli/fingerprint.py).
    from collections import namedtuple

    from components.prepare_prompt_data.stage import PromptDataConfig, run

    config = PromptDataConfig(
        prompt_dataset=prompt_dataset,
        eval_dataset=eval_dataset or None,
        instruction=instruction or None,
        prompt_sequence_length=prompt_sequence_length,
        batch_size=batch_size,
        algorithm=algorithm,
        num_generations=num_generations,
        reinforcement_learning_train_epochs=reinforcement_learning_train_epochs,
        reinforcement_learning_train_steps=reinforcement_learning_train_steps,
        eval_split_fraction=eval_split_fraction,
        max_eval_prompts=max_eval_prompts,
        seed=seed,
        max_bad_row_fraction=max_bad_row_fraction,
        length_policy=length_policy,
        use_chat_template=use_chat_template,
    )
    result = run(config, base_model.path, prompt_data.path, data_report.path)
    outputs = namedtuple("Outputs", ["train_rows", "eval_rows", "reinforcement_learning_train_steps"])
    return outputs(result.train_rows, result.eval_rows, result.reinforcement_learning_train_steps)
