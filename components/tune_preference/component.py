"""KFP wrapper of the preference-tuning stage (DPO or KTO)."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def tune_preference(
    base_model: Input[Model],
    preference_data: Input[Dataset],
    algorithm: str,
    preference_tuning_train_steps: int,
    reinforcement_learning_rate_multiplier: float,
    batch_size: int,
    dpo_beta: float,
    dpo_loss_type: str,
    kto_desirable_weight: float,
    kto_undesirable_weight: float,
    policy_lora_rank: int,
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
    policy: Output[Model],
    metrics: Output[Metrics],
    tensorboard_logs: Output[Artifact],
):
    """Tune the base model on the prepared preference pairs with DPO or KTO (`algorithm`), no reward model.

    DPO uses TRL's loss `dpo_loss_type` ("sigmoid": -log sigmoid(beta x margin)); KTO splits each pair
    into a desirable and an undesirable answer and weighs their losses by `kto_desirable_weight` and
    `kto_undesirable_weight`. Both keep the policy near the base model with strength `dpo_beta`.
    `preference_tuning_train_steps` optimizer steps of `batch_size` pairs each.

    Outputs the tuned policy as a plain Hugging Face model directory (LoRA merged), its final metrics
    (train loss, implicit-reward accuracy and margin on the held-out pairs, KTO's class balance), and
    a directory of TensorBoard logs (TRL's tags: `loss`, `rewards/chosen`, `rewards/rejected`,
    `rewards/margins`, `rewards/accuracies`, ...).

    Saves a checkpoint about every `checkpoint_interval_steps` steps (0: about every 10% of them;
    always at a logging step) under `checkpoint_root` (empty: `checkpoints/` under `pipeline_root`),
    in a folder named after this task's inputs, so that a retry with the same inputs resumes from
    the last one.
    """
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    import os

    from components.common.checkpoints import training_checkpoint_dir
    from components.common.data.preparation import prepared_files
    from components.common.distributed import run_on_every_gpu
    from components.common.kfp_outputs import record_metrics
    from components.common.models import model_source
    from components.common.stage_settings import settings_from_arguments
    from components.tune_preference.config import PreferenceTuningConfig
    from components.tune_preference.training import train_preference_policy

    config = settings_from_arguments(PreferenceTuningConfig, arguments)
    train_path, eval_path = prepared_files(preference_data.path)
    checkpoint_dir = training_checkpoint_dir(
        "tune_preference", config, base_model.path, {"train": train_path, "eval": eval_path},
        code_version=code_version, checkpoint_root=checkpoint_root, pipeline_root=pipeline_root,
    )
    os.makedirs(policy.path, exist_ok=True)
    os.makedirs(tensorboard_logs.path, exist_ok=True)
    results = run_on_every_gpu(
        train_preference_policy,
        config,
        replica_count=replica_count,
        policy_source=model_source(base_model.path),
        train_path=train_path,
        eval_path=eval_path,
        output_dir=policy.path,
        log_dir=tensorboard_logs.path,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval_steps=checkpoint_interval_steps,
    )
    record_metrics(metrics, results)
