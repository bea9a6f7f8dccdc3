"""Tuning a causal LM with PPO, GRPO or RLOO against a reward model, a reward function or both: the
training loop, its logs and its result.

Rollout, reward scoring, KL, logging, LoRA, checkpoints and the multi-GPU launcher are shared; what
differs per algorithm is the advantage estimate (rollout.py, group_math.py) and the loss (update.py).
"""

import time
from pathlib import Path
from types import SimpleNamespace

import torch
from tqdm.auto import tqdm

from components.common.chat_templates import PromptFormatter
from components.common.reward_functions import check_columns, load_reward_function
from components.common.checkpoints import interval_steps, remove_event_files, remove_task_checkpoints
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.errors import UserInputError
from components.common.learning_signal import missing_learning_signal
from components.common.models import Placement, load_tokenizer, save_causal_lm
from components.common.reward_scoring import RewardScorer
from components.common.vllm_rollouts import VllmEngine, start_rollout_engine
from components.common.sharding import (
    device_memory_bytes,
    gathered,
    is_sharded,
    shard_head,
    shard_model,
    training_state_bytes,
    uses_sharding,
    whole_copy,
)
from components.tune_policy.checkpointing import Progress, TrainingState, resume, save_checkpoint
from components.tune_policy.config import PolicyTuningConfig
from components.tune_policy.optimization import build_optimizer
from components.tune_policy.policy_model import PolicyWithValueHead, load_policy, make_reference
from components.tune_policy.group_math import group_reward_statistics
from components.tune_policy.ppo_math import masked_mean, masked_moments
from components.tune_policy.update import update_policy
from components.tune_policy.prompt_data import PromptBatches, read_training_rows
from components.tune_policy.rewards import RolloutRewards
from components.tune_policy.rollout import Rollout, collect_rollout

SAMPLES_LOGGED = 3  # responses shown in TensorBoard's text tab at each sample step
SAMPLE_LOG_INTERVAL = 10  # PPO steps between two sets of logged samples
SUMMARY_WINDOW_FRACTION = 0.1  # reward_start / reward_end average this share of the steps


def rollout_statistics(
    rollout: Rollout, kl_coeff: float, processes: TrainingProcesses = TrainingProcesses(), num_generations: int = 1
) -> dict[str, float]:
    """What one rollout says about the policy: reward, KL to the reference, lengths, value fit (PPO), and
    for GRPO/RLOO (`num_generations` > 1) the spread of rewards within groups.

    With several training processes, the statistics are those of every process's rollouts together.
    Responses without a reward (NaN) count in no reward statistic.
    """
    mask = rollout.response_mask.float()
    scores = processes.gather(rollout.scores)
    sequence_kl = processes.gather(rollout.kl.sum(dim=1))
    lengths = processes.gather(mask.sum(dim=1))
    truncated = processes.gather(rollout.truncated.float())
    rewarded = ~torch.isnan(scores)
    if not rewarded.all():
        scores, sequence_kl_of_rewarded = scores[rewarded], sequence_kl[rewarded]
    else:
        sequence_kl_of_rewarded = sequence_kl
    stats = {
        "reward": float(scores.mean()),
        "reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
        "kl": float(sequence_kl.mean()),
        "kl_loss": float(kl_coeff * sequence_kl.mean()),
        "shaped_reward": float((scores - kl_coeff * sequence_kl_of_rewarded).mean()),
        "response_length": float(lengths.mean()),
        "response_tokens": float(lengths.sum()),
        "truncated_fraction": float(truncated.mean()),
        "entropy": float(masked_mean(rollout.entropy, mask, processes.total)),
    }
    if rollout.values is not None:
        _, returns_variance = masked_moments(rollout.returns, mask, processes.total)
        _, residual_variance = masked_moments(rollout.returns - rollout.values, mask, processes.total)
        stats["value_explained_variance"] = float(1 - residual_variance / returns_variance.clamp(min=1e-8))
    if num_generations > 1:
        stats.update(group_reward_statistics(processes.gather(rollout.scores), num_generations))
    return stats


def sample_text(rollout: Rollout, prompts: list[Prompt]) -> str:
    """The first responses of a rollout with their prompts and scores, for TensorBoard's text tab."""
    rows = [
        f"**prompt** {prompts[i].text!r}\n\n**response** {rollout.texts[i]!r}\n\n**score** {float(rollout.scores[i]):.4f}"
        for i in range(min(SAMPLES_LOGGED, rollout.size))
    ]
    return "\n\n---\n\n".join(rows)


def log_step(writer, step: int, stats: dict[str, float], samples: str | None) -> None:
    for name, value in stats.items():
        writer.add_scalar(name, value, step)
    if samples is not None:
        writer.add_text("samples", samples, step)


def log_progress(writer, progress: Progress) -> None:
    """Write the steps a resumed run skipped again, as the killed run logged them."""
    samples = dict(progress.samples)
    for step, stats in enumerate(progress.history):
        log_step(writer, step, stats, samples.get(step))


def summarize(history: list[dict[str, float]]) -> dict[str, float]:
    """Final metrics: mean reward over the first and last steps first, then the end state."""
    window = max(1, int(len(history) * SUMMARY_WINDOW_FRACTION))

    def mean_of(name: str, steps: list[dict[str, float]]) -> float:
        return sum(s[name] for s in steps) / len(steps)

    first, last = history[:window], history[-window:]
    total_seconds = sum(s["time/step_seconds"] for s in history)
    rollout_seconds = sum(s["time/rollout_seconds"] for s in history)
    response_tokens = sum(s["response_tokens"] for s in history)
    grouped = {}
    if "groups_with_equal_rewards" in history[0]:  # GRPO, RLOO: steps in which some group's rewards differed
        grouped["steps_with_learning_signal"] = float(sum(s["groups_with_equal_rewards"] < 1.0 for s in history))
    return {
        **grouped,
        "reward_start": mean_of("reward", first),
        "reward_end": mean_of("reward", last),
        "reward_gain": mean_of("reward", last) - mean_of("reward", first),
        "kl_end": mean_of("kl", last),
        "kl_loss_end": mean_of("kl_loss", last),
        "response_length_end": mean_of("response_length", last),
        "truncated_fraction_end": mean_of("truncated_fraction", last),
        "entropy_end": mean_of("entropy", last),
        "steps": float(len(history)),
        "seconds_per_step": total_seconds / len(history),
        "tokens_per_second": response_tokens / total_seconds,
        "rollout_time_fraction": rollout_seconds / total_seconds,
    }


def distribute_policy(policy: PolicyWithValueHead, config: PolicyTuningConfig, processes: TrainingProcesses,
                      placement: Placement) -> tuple[torch.nn.Module, bool]:
    """The module the update trains, and whether the policy is sharded: alone, `policy` itself; several
    processes, `policy` sharded in place (FSDP2, as `config.sharding` says) or wrapped in DDP."""
    sharded = uses_sharding(config.sharding, processes.count, training_state_bytes(policy),
                            device_memory_bytes(placement.device))
    if not sharded:
        return processes.data_parallel(policy), False
    shard_model(policy.language_model)
    if policy.value_head is not None:
        shard_head(policy.value_head)
    if processes.is_main:
        print(f"FSDP: the policy is sharded between {processes.count} processes", flush=True)
    return policy, True


def save_policy(policy: PolicyWithValueHead, source: str, config: PolicyTuningConfig, tokenizer, output_dir,
                processes: TrainingProcesses) -> None:
    """The first process saves the tuned language model (LoRA merged; no value head). A sharded policy
    is gathered into a fresh, whole copy on the CPU first (every process takes part)."""
    language_model = policy.language_model
    if is_sharded(language_model):
        language_model = whole_copy(language_model, lambda: load_policy(
            source, config, Placement(torch.device("cpu"), torch.float32)).language_model, processes.is_main)
    if processes.is_main:
        save_causal_lm(language_model, tokenizer, output_dir)


def rollout_engine(config: PolicyTuningConfig, policy_source: str, placement: Placement,
                   processes: TrainingProcesses) -> VllmEngine | None:
    """The vLLM engine that samples the rollouts, or None where transformers' `generate` does
    (`config.rollout_engine`); the first process's stage log says which and why."""
    engine, line = start_rollout_engine(
        config.rollout_engine, policy_source, dtype=placement.dtype, seed=config.seed,
        max_model_len=config.max_prompt_tokens + config.max_new_tokens,
        gpu_memory_utilization=config.vllm_gpu_memory_utilization, processes=processes.count,
    )
    if processes.is_main:
        print(line, flush=True)
    return engine


def train_policy(
    config: PolicyTuningConfig,
    policy_source: str,
    reward_source: str | None,
    prompts_path: str | Path,
    output_dir: str | Path,
    log_dir: str | Path,
    placement: Placement | None = None,
    checkpoint_dir: str = "",
    checkpoint_interval_steps: int = 0,
) -> dict[str, float]:
    """Tune the policy at `policy_source` with `config.algorithm` (PPO, GRPO or RLOO) against the reward
    model at `reward_source` (None or "": no reward model), `config.reward_function`, or their sum
    (components/tune_policy/rewards.py), on the canonical prompt rows at `prompts_path` (whose
    `columns` reach the reward function).

    Saves the tuned policy (LoRA merged) with its tokenizer to `output_dir`, writes TensorBoard
    logs to `log_dir` and returns the final metrics. Deterministic for a given seed on the CPU.

    With a `checkpoint_dir`, saves a checkpoint there every `checkpoint_interval_steps` steps (0:
    about every 10% of them), resumes from the last one it finds, and deletes them at the end: a
    resumed run ends as an uninterrupted one would.

    Launched once per GPU (components.common.distributed), each process rolls out its share of
    every batch of prompts and the gradients are averaged over the processes; the first process logs
    and saves. Unsharded (`config.sharding`, components/common/sharding.py) each process holds whole
    copies of the models and DDP averages; sharded, FSDP2 splits the policy (and a full-weight
    reference) between them, gathers the policy whole for each rollout and shards it again for the
    update. The reward model is replicated: it is only read, and a whole copy spares a gathering per
    scoring batch.
    """
    from torch.utils.tensorboard import SummaryWriter

    processes = TrainingProcesses.from_environment()
    config.validate(processes.count)
    placement = placement or Placement.detect()
    tokenizer = load_tokenizer(policy_source, padding_side="left")
    formatter = PromptFormatter(tokenizer, config.use_chat_template, policy_source)
    rows = read_training_rows(prompts_path)
    reward_function = load_reward_function(config.reward_function)
    if reward_function is not None:
        check_columns(reward_function, [row.columns for row in rows], str(prompts_path))
    if not reward_source and reward_function is None:
        raise UserInputError("policy tuning needs a reward: a reward model, a reward_function, or both")
    torch.manual_seed(config.seed)  # the same initial weights (LoRA adapters, value head) in every process
    policy = load_policy(policy_source, config, placement)
    trained_policy, sharded = distribute_policy(policy, config, processes, placement)
    reference = make_reference(policy, policy_source, config, placement, sharded=sharded)
    if processes.rank:  # each process samples its own responses (the first goes on from the seed)
        torch.manual_seed(config.seed + processes.rank)
    model_score = None
    if reward_source:
        model_score = RewardScorer(
            reward_source,
            placement,
            batch_size=config.forward_batch_size,
            max_tokens=config.reward_max_tokens,
            use_chat_template=config.use_chat_template,
        ).score
    rewards = RolloutRewards(model_score, reward_function, conversational=formatter.templated)
    engine = rollout_engine(config, policy_source, placement, processes)
    name = config.algorithm.upper()
    optimizer, scheduler = build_optimizer(policy, config)
    state = TrainingState(
        policy=policy,
        optimizer=optimizer,
        scheduler=scheduler,
        minibatch_order=torch.Generator().manual_seed(config.seed),
        prompt_batches=PromptBatches(rows, config.prompts_per_step, config.seed),
        processes=processes,
    )
    progress = resume(checkpoint_dir, state, config.steps, name) if checkpoint_dir else Progress()
    interval = interval_steps(checkpoint_interval_steps, config.steps)

    writer = None
    if processes.is_main:
        remove_event_files(log_dir)
        writer = SummaryWriter(log_dir=str(log_dir))
        log_progress(writer, progress)
    bar = tqdm(
        range(progress.steps_done, config.steps),
        initial=progress.steps_done,
        total=config.steps,
        desc=name,
        unit="step",
        disable=not processes.is_main,
    )
    try:
        for step in bar:
            # GRPO/RLOO: each prompt num_generations times in a row; whole groups go to each process
            step_rows = [row for row in next(state.prompt_batches) for _ in range(config.generations_per_prompt)]
            step_rows = processes.shard(step_rows)
            step_prompts = [row.prompt for row in step_rows]
            learning_rate = scheduler.get_last_lr()[0]
            # what a TRL reward function may read of transformers' TrainerState
            rewards.trainer_state = SimpleNamespace(global_step=step, max_steps=config.steps, epoch=0.0)
            push_seconds = None
            with gathered(policy):  # (a sharded policy whole: its weights push and sample whole)
                if engine is not None and step > 0:  # the engine samples from the weights of the last update
                    push_seconds = engine.load_weights(policy.language_model)
                rollout = collect_rollout(
                    policy, reference, rewards, formatter, step_prompts, config, processes,
                    columns=[row.columns for row in step_rows], engine=engine,
                )
            if engine is not None:
                engine.sleep()  # on a GPU the update takes the memory the engine held; the next push wakes it
            update_started = time.perf_counter()
            update_stats = update_policy(
                trained_policy, optimizer, scheduler, rollout, config, state.minibatch_order, processes
            )
            update_seconds = time.perf_counter() - update_started
            step_seconds = rollout.seconds + update_seconds + (push_seconds or 0.0)
            rollout_stats = rollout_statistics(rollout, config.kl_coeff, processes, config.generations_per_prompt)
            rollout_stats.update(rewards.take_logged_metrics())
            rollout_stats.update(rollout.engine_statistics or {})
            if push_seconds is not None:
                rollout_stats["time/weight_push_seconds"] = push_seconds
            stats = {
                **rollout_stats,
                **update_stats,
                "learning_rate": learning_rate,
                "tokens_per_second": rollout_stats["response_tokens"] / step_seconds,
                "time/generation_seconds": rollout.generation_seconds,
                "time/rollout_seconds": rollout.seconds,
                "time/update_seconds": update_seconds,
                "time/step_seconds": step_seconds,
                "time/rollout_fraction": rollout.seconds / step_seconds,
            }
            logs_samples = step % SAMPLE_LOG_INTERVAL == 0 or step == config.steps - 1
            samples = sample_text(rollout, step_prompts) if logs_samples else None
            progress.record(stats, samples)
            if writer is not None:
                log_step(writer, step, stats, samples)
            if checkpoint_dir and progress.steps_done % interval == 0 and progress.steps_done < config.steps:
                save_checkpoint(checkpoint_dir, progress, state)
            bar.set_postfix(reward=f"{stats['reward']:.3f}", kl=f"{stats['kl']:.3f}")
    finally:
        if writer is not None:
            writer.close()
    save_policy(policy, policy_source, config, tokenizer, output_dir, processes)
    if processes.is_main:
        if config.grouped and (warning := missing_learning_signal(progress.history, config.num_generations)):
            print(f"warning: {warning}", flush=True)  # the console shows it under the stage's line
    processes.wait_for_everyone()
    if processes.is_main and checkpoint_dir:
        remove_task_checkpoints(checkpoint_dir)
    return summarize(progress.history)
