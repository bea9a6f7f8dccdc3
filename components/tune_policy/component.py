"""KFP wrapper of the policy-tuning stage (PPO, GRPO or RLOO)."""

from typing import Optional

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output


def tune_policy(
    base_model: Input[Model],
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
    replica_count: int,
    algorithm: str,
    num_generations: int,
    loss_type: str,
    epsilon: float,
    epsilon_high: float,
    scale_rewards: str,
    reward_function: str,
    sharding: str,
    activation_checkpointing: bool,
    rollout_engine: str,
    vllm_gpu_memory_utilization: float,
    importance_sampling_cap: float,
    policy: Output[Model],
    metrics: Output[Metrics],
    tensorboard_logs: Output[Artifact],
    reward_model: Optional[Input[Model]] = None,
):
    """Tune the base model with PPO, GRPO or RLOO (`algorithm`) on the training prompts, against the
    reward model, the `reward_function`, or both (their sum; see components/tune_policy/rewards.py).

    `reward_model` may be left out, or stand for no model (components/common/models.py), when
    `reward_function` is given. GRPO and RLOO sample
    `num_generations` responses per prompt (`batch_size` counts responses, a multiple of it), clip the
    ratio to [1 - epsilon, 1 + epsilon_high (0: epsilon)] and average token losses as `loss_type`
    ("grpo", "dr_grpo", "dapo") says; GRPO divides advantages as `scale_rewards` ("group", "batch",
    "none") says. `ppo_epochs` and `ppo_minibatch_size` apply to all three; PPO ignores the GRPO/RLOO
    settings. `kl_coeff` 0 loads no reference model. On several GPUs the models are replicated or
    sharded (FSDP2) as `sharding` says; `activation_checkpointing` recomputes activations in the update.
    `rollout_engine` says what samples the rollouts (vLLM or transformers; components/common/vllm_rollouts.py).

    Outputs the tuned policy as a plain Hugging Face model directory (LoRA merged), its final
    metrics, and a directory of TensorBoard logs (tags `reward`, `kl_loss`, `rl_loss`,
    `learning_rate`, ...).

    Saves a checkpoint every `checkpoint_interval_steps` PPO steps (0: about every 10% of them) under
    `checkpoint_root` (empty: `checkpoints/` under `pipeline_root`), in a folder named after this
    task's inputs, so that a retry with the same inputs resumes from the last one.
    """
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    import dataclasses
    import os

    from components.common.checkpoints import task_checkpoint_dir
    from components.common.distributed import run_on_every_gpu
    from components.common.kfp_outputs import record_metrics
    from components.common.models import holds_model, model_source
    from components.common.stage_settings import settings_from_arguments
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.training import train_policy

    config = settings_from_arguments(PolicyTuningConfig, arguments)
    prompts_path = os.path.join(prompt_data.path, "train.jsonl")
    reward_path = reward_model.path if reward_model is not None and holds_model(reward_model.path) else ""
    inputs = {"base_model": base_model.path, "prompts": prompts_path}
    if reward_path:
        inputs["reward_model"] = reward_path
    function_file = reward_function.strip().rpartition(":")[0]
    if function_file.endswith(".py") and os.path.isfile(function_file):
        inputs["reward_function"] = function_file  # an edited function starts afresh
    checkpoint_dir = task_checkpoint_dir(
        checkpoint_root,
        pipeline_root,
        stage="tune_policy",
        code_version=code_version,
        settings=dataclasses.asdict(config),
        inputs=inputs,
    )
    os.makedirs(policy.path, exist_ok=True)
    os.makedirs(tensorboard_logs.path, exist_ok=True)
    final_metrics = run_on_every_gpu(
        train_policy,
        config,
        replica_count=replica_count,
        policy_source=model_source(base_model.path),
        reward_source=model_source(reward_path) if reward_path else "",
        prompts_path=prompts_path,
        output_dir=policy.path,
        log_dir=tensorboard_logs.path,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval_steps=checkpoint_interval_steps,
    )
    record_metrics(metrics, final_metrics)
