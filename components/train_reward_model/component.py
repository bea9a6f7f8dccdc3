"""KFP wrapper of the reward-model stage."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def train_reward_model(
    base_model: Input[Model],
    reward_model_reference: str,
    preference_data: Input[Dataset],
    reward_model_train_steps: int,
    reward_model_learning_rate_multiplier: float,
    batch_size: int,
    reward_model_lora_rank: int,
    use_margin: bool,
    center_rewards_coefficient: float,
    use_chat_template: str,
    prompt_sequence_length: int,
    target_sequence_length: int,
    seed: int,
    code_version: str,
    checkpoint_root: str,
    pipeline_root: str,
    checkpoint_interval_steps: int,
    replica_count: int,
    sharding: str,
    reward_model: Output[Model],
    metrics: Output[Metrics],
    tensorboard_logs: Output[Artifact],
) -> float:
    """Train the reward model on the prepared pairs; returns its eval pairwise accuracy.

    The reward model starts from `reward_model_reference` when one is given, else from the base model.

    Saves a checkpoint about every `checkpoint_interval_steps` steps (0: about every 10% of them;
    always at a logging step) under `checkpoint_root` (empty: `checkpoints/` under `pipeline_root`),
    in a folder named after this task's inputs, so that a retry with the same inputs resumes from
    the last one.
    """
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    import tempfile

    from components.common.checkpoints import training_checkpoint_dir
    from components.common.data.preparation import prepared_files
    from components.common.distributed import run_on_every_gpu
    from components.common.kfp_outputs import record_metrics
    from components.common.models import model_source
    from components.common.stage_settings import settings_from_arguments
    from components.train_reward_model.config import RewardTrainingConfig
    from components.train_reward_model.training import train_reward_model as train

    config = settings_from_arguments(RewardTrainingConfig, arguments)
    train_path, eval_path = prepared_files(preference_data.path)
    checkpoint_dir = training_checkpoint_dir(
        "train_reward_model", config, base_model.path, {"train": train_path, "eval": eval_path},
        code_version=code_version, checkpoint_root=checkpoint_root, pipeline_root=pipeline_root,
        reward_model_reference=reward_model_reference,
    )
    with tempfile.TemporaryDirectory() as scratch:
        source = model_source(base_model.path)
        if reward_model_reference:
            from components.common.models import materialize_base_model

            materialize_base_model(reward_model_reference, scratch, seed)
            source = model_source(scratch)
        results = run_on_every_gpu(
            train,
            config,
            replica_count=replica_count,
            base_source=source,
            train_path=train_path,
            eval_path=eval_path,
            output_dir=reward_model.path,
            log_dir=tensorboard_logs.path,
            checkpoint_dir=checkpoint_dir,
            checkpoint_interval_steps=checkpoint_interval_steps,
        )
    record_metrics(metrics, results)
    return results["eval_accuracy"]


def skip_reward_model(
    algorithm: str, code_version: str, reward_model: Output[Model], tensorboard_logs: Output[Artifact]
):
    """Stand in for the reward model in a run that needs none: its reward_model artifact says so
    (components/common/models.py, write_no_model) and its logs are empty, so that every later step
    takes the same inputs whether the reward model was trained or not."""
    import os

    from components.common.algorithms import ONLINE_ALGORITHMS
    from components.common.models import write_no_model

    reason = (
        "the policy is tuned with the reward function alone"
        if algorithm in ONLINE_ALGORITHMS
        else f"{algorithm} learns from the pairs and train_reward_model_for_eval is false"
    )
    write_no_model(reward_model.path, reason)
    os.makedirs(tensorboard_logs.path, exist_ok=True)
    print(f"no reward model: {reason}")
