"""KFP wrapper of the PPO policy-tuning stage."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def tune_policy(
    base_model: Input[Model],
    reward_model: Input[Model],
    prompt_data: Input[Dataset],
    reinforcement_learning_train_steps: int,
    reinforcement_learning_rate_multiplier: float,
    kl_coeff: float,
    batch_size: int,
    ppo_epochs: int,
    ppo_minibatch_size: int,
    sampling_temperature: float,
    missing_eos_penalty: float,
    use_chat_template: str,
    prompt_sequence_length: int,
    target_sequence_length: int,
    policy_lora_rank: int,
    seed: int,
    code_version: str,
    checkpoint_root: str,
    pipeline_root: str,
    checkpoint_interval_steps: int,
    policy: Output[Model],
    metrics: Output[Metrics],
    tensorboard_logs: Output[Artifact],
):
    """Tune the base model with PPO against the reward model on the training prompts.

    Outputs the tuned policy as a plain Hugging Face model directory (LoRA merged), its final
    metrics, and a directory of TensorBoard logs (tags `reward`, `kl_loss`, `rl_loss`,
    `learning_rate`, ...).

    Saves a checkpoint every `checkpoint_interval_steps` PPO steps (0: about every 10% of them) under
    `checkpoint_root` (empty: `checkpoints/` under `pipeline_root`), in a folder named after this
    task's inputs, so that a retry with the same inputs resumes from the last one.
    """
    import dataclasses
    import os

    from components.common.checkpoints import task_checkpoint_dir
    from components.common.distributed import run_on_every_gpu
    from components.common.kfp_outputs import record_metrics
    from components.common.models import model_source
    from components.tune_policy.config import PPOConfig
    from components.tune_policy.ppo import train_policy

    config = PPOConfig(
        steps=reinforcement_learning_train_steps,
        learning_rate_multiplier=reinforcement_learning_rate_multiplier,
        kl_coeff=kl_coeff,
        batch_size=batch_size,
        ppo_epochs=ppo_epochs,
        minibatch_size=ppo_minibatch_size,
        temperature=sampling_temperature,
        missing_eos_penalty=missing_eos_penalty,
        use_chat_template=use_chat_template,
        max_prompt_tokens=prompt_sequence_length,
        max_new_tokens=target_sequence_length,
        lora_rank=policy_lora_rank,
        seed=seed,
    )
    prompts_path = os.path.join(prompt_data.path, "train.jsonl")
    checkpoint_dir = task_checkpoint_dir(
        checkpoint_root,
        pipeline_root,
        stage="tune_policy",
        code_version=code_version,
        settings=dataclasses.asdict(config),
        inputs={"base_model": base_model.path, "reward_model": reward_model.path, "prompts": prompts_path},
    )
    os.makedirs(policy.path, exist_ok=True)
    os.makedirs(tensorboard_logs.path, exist_ok=True)
    final_metrics = run_on_every_gpu(
        train_policy,
        config,
        policy_source=model_source(base_model.path),
        reward_source=model_source(reward_model.path),
        prompts_path=prompts_path,
        output_dir=policy.path,
        log_dir=tensorboard_logs.path,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval_steps=checkpoint_interval_steps,
    )
    record_metrics(metrics, final_metrics)
