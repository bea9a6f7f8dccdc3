"""The memory plan of every training step a run executes, from its parameter values.

Each step's settings are its stage's own config, filled from the parameters exactly as the stage fills
it (`settings_from_arguments`), so the plan reads the micro-batch, forward-batch and LoRA settings the
stage will use. Which steps run is `plan_stages`'s decision, as in the DAG. Per step, what one device
(one training process) holds:

- supervised fine-tuning: the policy trained in full (TRL's SFTTrainer, activation checkpointing on);
- reward model: one sequence-classification model, in full or through LoRA (adapters and the score
  head), on pairs read as 2 x micro-batch sequences (TRL's RewardTrainer, checkpointing on);
- online RL (PPO, GRPO, RLOO, our engine; activation checkpointing as `activation_checkpointing` says):
  the policy (PPO: with its value head), its reference (none when kl_coeff is 0; under LoRA the policy
  with adapters disabled, no extra weights; else a float32 copy), the reward model in the compute dtype
  (none with a rule reward alone); generation keeps the KV cache of the process's share of `batch_size`
  responses, the update the activations of `forward_batch_size` rows (at most the minibatch's share) and
  their logits over the response positions with their gradient (components/common/log_probs.py keeps no
  other copy). Sharded (`sharding`, FSDP2, components/common/sharding.py), each process holds 1/N of the
  policy's and the reference's weights, gradients and Adam state, plus the whole policy while it
  generates (it is gathered for the rollout) and two decoder layers gathered at a time in the update.
  With `rollout_engine` vllm the vLLM engine samples instead of the policy: on a GPU it takes
  `vllm_gpu_memory_utilization` of the GPU while it samples and sleeps (holding nothing) during the
  update; on the CPU it keeps its own copy of the weights and its KV cache space throughout. `auto` is
  planned as the default image runs it, without vLLM;
- DPO/KTO (TRL, checkpointing on): the policy and, trained in full, a frozen reference in the compute
  dtype (under LoRA the adapters are disabled instead); TRL's fused LM head, measured, holds about four
  float32 vocabulary-wide tensors of the micro-batch.

Several GPUs run data-parallel (DDP) unless the step shards: each holds whole copies of every model, and
DDP adds gradient buckets as large as the gradients, for as long as the model lives; only the batch is
split between them. A TRL-trained step shards as its stage decides (components/common/trainer/sharding.py):
each process then holds 1/N of the trained model (and of DPO's full-weight reference) and two decoder
layers gathered at a time.
"""

import os
from dataclasses import dataclass, replace
from typing import Any

from cli.memory_plan.estimate import (
    ADAM_MOMENTS,
    CPU_PROCESS_BYTES,
    CUDA_RUNTIME_BYTES,
    FLOAT32,
    GIB,
    ModelMemory,
    StepPlan,
    activation_bytes,
    frozen_model,
    kv_cache_bytes,
    logits_bytes,
    trained_model,
)
from components.common.model_architecture import Architecture
from components.common.sharding import replica_training_bytes, uses_sharding
from components.common.vllm_rollouts import ENGINE_ENVIRONMENT, VLLM


@dataclass(frozen=True)
class PlanInputs:
    """What the plan needs beside the parameter values: the models' architectures and the device."""

    policy: Architecture
    reward_model: Architecture
    compute_bytes: int  # 2 on a GPU (bf16), 4 on the CPU
    processes: int  # training processes (GPUs) per step
    on_gpu: bool
    device_memory: int | None = None  # bytes of one GPU (what `sharding` "auto" weighs); None: the CPU


def _with_ddp_buckets(model: ModelMemory, processes: int) -> ModelMemory:
    if processes == 1:
        return model
    return replace(model, weights=model.weights + model.gradients)  # DDP's buckets live as long as the model


def _step(name: str, models: list[ModelMemory], inputs: PlanInputs, notes: list[str], sharded: bool = False) -> StepPlan:
    """The step's plan; replicated on several GPUs (not `sharded`), each trained model gets DDP's buckets."""
    data_parallel = inputs.processes > 1 and not sharded
    trained = [_with_ddp_buckets(model, inputs.processes) if model.gradients and data_parallel else model
               for model in models]
    if data_parallel:
        notes.append(f"{inputs.processes} GPUs: data-parallel, each holds whole copies of the models (no sharding); "
                     "weights include DDP's gradient buckets")
    return StepPlan(name, tuple(trained), CUDA_RUNTIME_BYTES if inputs.on_gpu else CPU_PROCESS_BYTES, tuple(notes))


def _trl_stage_shards(config, inputs: PlanInputs, parameters: int, lora_rank: int) -> bool:
    """Whether a TRL-trained step shards, weighed as its stage weighs the model it loads: every weight
    trained and in float32, or a LoRA base in the compute dtype with next to nothing trained."""
    stored = parameters * (inputs.compute_bytes if lora_rank else FLOAT32)
    return uses_sharding(config.sharding, inputs.processes,
                         replica_training_bytes(stored, 0 if lora_rank else parameters), inputs.device_memory)


def _share(size: int, processes: int) -> int:
    """One process's part of `size` bytes sharded between `processes` (rounded up)."""
    return -(-size // processes)


def _shard(model: ModelMemory, arch: Architecture, processes: int, lm_head: bool = True) -> ModelMemory:
    """One process's share of a sharded model: 1/N of its weights, gradients and Adam state, plus two
    decoder layers gathered whole at a time (the one computing and the next, prefetched). A trained model's
    unit of embeddings, final norm and LM head (none for a reward model) stays gathered from its forward to
    its backward, with its whole gradient; a frozen one's is sharded again after each forward."""
    root, gathered_gradient = 0, 0
    if model.gradients:
        parameters = arch.causal_lm_parameters() if lm_head else arch.reward_model_parameters()
        matrices = 2 if lm_head and not arch.tie_word_embeddings else 1
        fraction = matrices * arch.vocab_size * arch.hidden_size / parameters
        root, gathered_gradient = int(model.weights * fraction), int(model.gradients * fraction)
    # counted with the gradients: what the update phase holds (the generation phase gathers the whole policy)
    return replace(model, weights=_share(model.weights, processes) + 2 * model.weights // arch.num_layers,
                   gradients=_share(model.gradients, processes) + root + gathered_gradient,
                   optimizer=_share(model.optimizer, processes))


def _trl_step(name: str, models: list[ModelMemory], inputs: PlanInputs, notes: list[str], sharded: bool,
              arch: Architecture, lm_head: bool = True) -> StepPlan:
    if sharded:
        loaded = sum(model.weights for model in models) / GIB
        models = [_shard(model, arch, inputs.processes, lm_head) for model in models]
        notes.append(f"sharded (FSDP2) between {inputs.processes} processes; host RAM: each process loads the "
                     f"whole model ({loaded:.1f} GiB) before sharding it, so a machine needs one copy per GPU")
    return _step(name, models, inputs, notes, sharded=sharded)


def supervised_fine_tuning_plan(config, inputs: PlanInputs) -> StepPlan:
    arch, cb = inputs.policy, inputs.compute_bytes
    policy = trained_model("policy", arch.causal_lm_parameters(), 0, cb)
    rows = config.micro_batch_size(inputs.processes)
    tokens = config.max_prompt_tokens + config.max_completion_tokens
    # the logits, their float32 copy for the loss, and the gradients of both
    logits = 2 * logits_bytes(arch, rows, tokens, cb + FLOAT32)
    policy = replace(policy, activations=activation_bytes(arch, rows, tokens, cb, checkpointing=True) + logits)
    sharded = _trl_stage_shards(config, inputs, arch.causal_lm_parameters(), 0)
    return _trl_step("Supervised fine-tuning", [policy], inputs,
                     [f"micro-batch {rows} x {tokens} tokens, activation checkpointing on"], sharded, arch)


def reward_model_plan(config, inputs: PlanInputs) -> StepPlan:
    arch, cb = inputs.reward_model, inputs.compute_bytes
    trained = arch.lora_parameters(config.lora_rank) + arch.hidden_size if config.lora_rank else 0  # + the score head
    model = trained_model("reward model", arch.reward_model_parameters(), trained, cb)
    pairs = config.micro_batch_size(inputs.processes)
    model = replace(model, activations=activation_bytes(arch, 2 * pairs, config.max_length, cb, checkpointing=True))
    sharded = _trl_stage_shards(config, inputs, arch.reward_model_parameters(), config.lora_rank)
    return _trl_step("Train reward model", [model], inputs,
                     [f"micro-batch {pairs} pairs x 2 x {config.max_length} tokens, activation checkpointing on"],
                     sharded, arch, lm_head=False)


def policy_tuning_plan(config, inputs: PlanInputs, with_reward_model: bool) -> StepPlan:
    """Online RL (components/tune_policy/): PPO, GRPO or RLOO."""
    arch, cb = inputs.policy, inputs.compute_bytes
    lora = arch.lora_parameters(config.lora_rank)
    value_head = 0 if config.grouped else arch.hidden_size + 1
    policy = trained_model("policy", arch.causal_lm_parameters(), lora, cb)
    if value_head:  # float32, trained beside a LoRA or a full policy
        policy = replace(policy, weights=policy.weights + value_head * FLOAT32,
                         gradients=policy.gradients + value_head * FLOAT32,
                         optimizer=policy.optimizer + value_head * FLOAT32 * ADAM_MOMENTS)
    rows = min(config.minibatch_size // inputs.processes, config.forward_batch_size)
    tokens = config.max_prompt_tokens + config.max_new_tokens
    responses = config.batch_size // inputs.processes
    activations = activation_bytes(arch, rows, tokens, cb, checkpointing=config.activation_checkpointing)
    activations += 2 * logits_bytes(arch, rows, config.max_new_tokens + 1, cb)  # the logits and their gradient
    # generation: the cache, and the next token's float32 logits with their sampling probabilities
    generation = kv_cache_bytes(arch, responses, tokens, cb) + 2 * logits_bytes(arch, responses, 1, FLOAT32)
    checkpointing = "activation checkpointing on" if config.activation_checkpointing else "no activation checkpointing"
    notes = [f"update: {rows} rows x {tokens} tokens a forward pass, {checkpointing}; generation: {responses} responses"]
    engine = _vllm_engine(config, inputs) if config.rollout_engine == VLLM else None
    if engine is not None:
        generation = 0  # the engine samples, not the policy
        notes.append("rollouts: vLLM in the step's process" + (
            f", {config.vllm_gpu_memory_utilization:.0%} of the GPU while it samples, asleep during the update"
            if inputs.on_gpu else ", its own copy of the weights and its KV cache space"))
    reference = None
    if config.kl_coeff == 0:
        notes.append("kl_coeff 0: no reference")
    elif config.lora_rank:
        notes.append("reference: the policy with its adapters disabled (no extra weights)")
    else:
        reference = frozen_model("reference", arch.causal_lm_parameters(), FLOAT32)
    # "auto" weighs the policy as the stage does once it is loaded: its weights as stored (a LoRA base in the
    # compute dtype, trained weights in float32), without the bf16 copies autocast makes while it computes
    trained = policy.gradients // FLOAT32
    stored = trained * FLOAT32 + (arch.causal_lm_parameters() * cb if config.lora_rank else 0)
    sharded = uses_sharding(config.sharding, inputs.processes, replica_training_bytes(stored, trained),
                            inputs.device_memory)
    if sharded:
        policy, generation, reference = _sharded_policy(policy, generation, reference, arch, inputs.processes)
        notes.append(f"sharded (FSDP2) between {inputs.processes} GPUs; the policy is gathered whole to generate")
    models = [replace(policy, activations=activations, kv_cache=generation)] + ([reference] if reference else [])
    if with_reward_model:
        models.append(frozen_model("reward model", inputs.reward_model.reward_model_parameters(), cb))
    if engine is not None:
        models.append(engine)
    return _step(f"Tune policy (RL): {config.algorithm.upper()}", models, inputs, notes, sharded=sharded)


def _vllm_engine(config, inputs: PlanInputs) -> ModelMemory:
    """The vLLM engine beside the trainer (components/common/vllm_rollouts.py). On a GPU vLLM takes its share of
    the GPU's memory (weights, KV cache, workspace) as it starts, and level-2 sleep gives all of it back during
    the update: a generation-phase cost. On the CPU it holds its weights in the compute dtype and the KV cache
    space it is given (`VLLM_CPU_KVCACHE_SPACE` GiB) for the whole step."""
    if inputs.on_gpu:
        return ModelMemory("vLLM engine", weights=0, kv_cache=int(config.vllm_gpu_memory_utilization * inputs.device_memory))
    cache_gib = float(os.environ.get("VLLM_CPU_KVCACHE_SPACE", ENGINE_ENVIRONMENT["VLLM_CPU_KVCACHE_SPACE"]))
    weights = inputs.policy.causal_lm_parameters() * inputs.compute_bytes
    return ModelMemory("vLLM engine", weights=weights + int(cache_gib * GIB))


def _sharded_policy(policy: ModelMemory, generation: int, reference: ModelMemory | None, arch: Architecture,
                    processes: int) -> tuple[ModelMemory, int, ModelMemory | None]:
    """One process's share of the sharded policy and reference (`_shard`); generation holds the policy
    gathered whole beside its cache."""
    gathered_rest = policy.weights - _share(policy.weights, processes)
    return (_shard(policy, arch, processes), generation + gathered_rest,
            _shard(reference, arch, processes) if reference is not None else None)


def preference_tuning_plan(config, inputs: PlanInputs) -> StepPlan:
    """DPO or KTO (components/tune_preference/, TRL)."""
    arch, cb = inputs.policy, inputs.compute_bytes
    policy = trained_model("policy", arch.causal_lm_parameters(), arch.lora_parameters(config.lora_rank), cb)
    examples = config.micro_batch_size(inputs.processes)
    rows = examples * (2 if config.algorithm == "dpo" else 1)  # DPO: chosen and rejected of each pair
    tokens = config.max_prompt_tokens + config.max_response_tokens
    # TRL 1.16's fused LM head still holds about four float32 vocabulary-wide tensors of the micro-batch at its
    # peak (entropy and accuracy statistics beside the log-probabilities): a figure measured on SmolLM2-135M
    # (benchmarks/memory_plan_check.py), not derived
    head = 4 * logits_bytes(arch, rows, tokens, FLOAT32)
    models = [replace(policy, activations=activation_bytes(arch, rows, tokens, cb, checkpointing=True) + head)]
    notes = [f"micro-batch {rows} sequences x {tokens} tokens, activation checkpointing on"]
    if config.lora_rank:
        notes.append("reference: the policy with its adapters disabled (no extra weights)")
    else:
        models.append(frozen_model("reference", arch.causal_lm_parameters(), cb))
    sharded = _trl_stage_shards(config, inputs, arch.causal_lm_parameters(), config.lora_rank)
    return _trl_step(f"Tune policy on pairs: {config.algorithm.upper()}", models, inputs, notes, sharded, arch)


def training_step_plans(values: dict[str, Any], inputs: PlanInputs) -> list[StepPlan]:
    """The plan of every training step a run with these parameter values (defaults filled in) executes."""
    from components.common.algorithms import ONLINE, TRAIN, plan_stages_from
    from components.common.stage_settings import settings_from_arguments
    from components.supervised_fine_tuning.config import SupervisedTrainingConfig
    from components.train_reward_model.config import RewardTrainingConfig
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_preference.config import PreferenceTuningConfig

    stages = plan_stages_from(values)
    plans = []
    if values["sft_dataset"].strip():
        plans.append(supervised_fine_tuning_plan(settings_from_arguments(SupervisedTrainingConfig, values), inputs))
    if stages.reward_model == TRAIN:
        plans.append(reward_model_plan(settings_from_arguments(RewardTrainingConfig, values), inputs))
    if stages.policy_tuning == ONLINE:
        config = settings_from_arguments(PolicyTuningConfig, values)
        plans.append(policy_tuning_plan(config, inputs, with_reward_model=stages.reward_model == TRAIN))
    else:
        config = settings_from_arguments(PreferenceTuningConfig, values, steps=1)
        plans.append(preference_tuning_plan(config, inputs))
    return plans
