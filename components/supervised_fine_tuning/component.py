"""KFP wrappers of the supervised fine-tuning stage, and of the step that stands in for it."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def supervised_fine_tuning(
    base_model: Input[Model],
    preference_data: Input[Dataset],
    sft_dataset: str,
    system_prompt: str,
    sft_train_epochs: int,
    sft_learning_rate_multiplier: float,
    batch_size: int,
    use_chat_template: str,
    prompt_sequence_length: int,
    target_sequence_length: int,
    max_bad_row_fraction: float,
    seed: int,
    code_version: str,
    checkpoint_root: str,
    pipeline_root: str,
    checkpoint_interval_steps: int,
    replica_count: int,
    sharding: str,
    sft_data_fingerprint: str,
    model: Output[Model],
    metrics: Output[Metrics],
    tensorboard_logs: Output[Artifact],
):
    """Fine-tune the base model on `sft_dataset` (prompt + completion or messages rows, or
    `preference:chosen`: the chosen answers of `preference_data`'s training pairs) for
    ceil(examples / batch_size) * sft_train_epochs steps; the loss covers the completions only.

    Outputs the fine-tuned model as a plain Hugging Face model directory, its metrics (the data's
    books included) and TensorBoard logs under TRL's tags (`loss`, `learning_rate`,
    `mean_token_accuracy`, ...). Without an `sft_dataset` the DAG runs skip_supervised_fine_tuning
    instead.

    Saves a checkpoint about every `checkpoint_interval_steps` steps (0: about every 10% of them)
    under `checkpoint_root` (empty: `checkpoints/` under `pipeline_root`), in a folder named after
    this task's inputs, so that a retry with the same inputs resumes from the last one.
    """
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    # sft_data_fingerprint is read by nothing here: it puts the data's contents into the step's cache
    # key, so that an sft_dataset edited in place reruns the step (cli/fingerprint.py).
    import os
    import tempfile

    from components.common.checkpoints import training_checkpoint_dir
    from components.common.data.preparation import TRAIN_FILE, write_jsonl
    from components.common.distributed import run_on_every_gpu
    from components.common.kfp_outputs import record_metrics
    from components.common.errors import UserInputError
    from components.common.models import model_source
    from components.common.stage_settings import settings_from_arguments
    from components.supervised_fine_tuning.config import SupervisedTrainingConfig
    from components.supervised_fine_tuning.data import read_sft_dataset
    from components.supervised_fine_tuning.training import train_supervised

    os.makedirs(tensorboard_logs.path, exist_ok=True)
    source = model_source(base_model.path)
    data = read_sft_dataset(sft_dataset, os.path.join(preference_data.path, TRAIN_FILE), max_bad_row_fraction,
                            system_prompt or None)
    if data is None:
        raise UserInputError("sft_dataset is empty: nothing to fine-tune on (the DAG then runs skip_supervised_fine_tuning)")
    print(f"supervised fine-tuning data: {data.summary()}")
    if data.ledger.rejects:
        print(f"rejected rows: {data.ledger.reasons_summary()}")

    config = settings_from_arguments(SupervisedTrainingConfig, arguments)
    with tempfile.TemporaryDirectory() as scratch:
        rows_path = os.path.join(scratch, "sft_examples.jsonl")
        write_jsonl(rows_path, (example.to_json() for example in data.examples))
        checkpoint_dir = training_checkpoint_dir(
            "supervised_fine_tuning", config, base_model.path, {"examples": rows_path},
            code_version=code_version, checkpoint_root=checkpoint_root, pipeline_root=pipeline_root,
        )
        results = run_on_every_gpu(
            train_supervised,
            config,
            replica_count=replica_count,
            base_source=source,
            rows_path=rows_path,
            output_dir=model.path,
            log_dir=tensorboard_logs.path,
            checkpoint_dir=checkpoint_dir,
            checkpoint_interval_steps=checkpoint_interval_steps,
        )
    record_metrics(metrics, {**data.metrics(), **results})


def skip_supervised_fine_tuning(
    base_model: Input[Model], code_version: str, model: Output[Model], tensorboard_logs: Output[Artifact]
):
    """Stand in for the fine-tuned model in a run without `sft_dataset`: `model` refers to the base
    model (model_reference.json, no weights copied) and the logs are empty, so that every later step
    takes the same inputs whether supervised fine-tuning ran or not."""
    import os

    from components.common.models import model_source, write_model_reference

    write_model_reference(model.path, model_source(base_model.path), "the base model: no sft_dataset was given")
    os.makedirs(tensorboard_logs.path, exist_ok=True)
    print("no supervised fine-tuning: sft_dataset is empty; the base model is passed on as it is")
