"""Bytes one device holds for each model of a training step: weights, gradients, optimizer state,
activations and the KV cache of generation. Plain arithmetic on a model's `Architecture`
(components/common/model_architecture.py); training_steps.py says which models each step holds.

Precision, as the stages load models (components/common/models.py, `Placement` and `weights_dtype`):
on a GPU the stages compute in bf16 (`compute_bytes` 2), on the CPU in float32 (4). A trained weight is
always float32: a model trained in full is loaded in float32 (its weights are the master weights;
under bf16 autocast torch also keeps a bf16 copy of each while the forward and backward run, 2 more
bytes), a LoRA base stays frozen in the compute dtype and only its float32 adapters train. AdamW keeps
two float32 moments per trained weight. So full training costs 4 + 4 + 8 (+ 2 on a GPU) bytes per
parameter before activations.

Activations, per token of one decoder block, as autograd saves them in a Llama-layout block (no
dropout: these models have none, and the RL engine runs in eval mode): the two RMSNorms' inputs in
float32 and their outputs (2 x (4 + 2 x compute) x hidden bytes); q, its rotated copy, the attention
output and the output projection's input (4 x hidden); k, v, their rotated and attention copies
(4 x kv width); the gated MLP's gate, up, activation and product (4 x intermediate; GPT-2's MLP 2).
Attention itself is the fused kernel (SDPA): no heads x tokens^2 matrix is kept. With activation
checkpointing (the TRL-based steps: TRL's configs turn it on) only each block's input is kept, and one
block's activations are rebuilt at a time during the backward pass.
"""

from dataclasses import dataclass

from components.common.model_architecture import Architecture

GIB = 1 << 30
FLOAT32 = 4
ADAM_MOMENTS = 2  # AdamW's exp_avg and exp_avg_sq, float32, per trained weight
GPU_COMPUTE_BYTES = 2  # bf16 on a GPU (Placement.detect)
CPU_COMPUTE_BYTES = 4  # float32 on the CPU
CUDA_RUNTIME_BYTES = 1 * GIB  # the CUDA context and cuBLAS workspaces: roughly 0.5-1 GiB on an A100 or H100
# What a training process on the CPU holds beyond its tensors once it trains (autograd's engine, the allocator's
# arenas, the trainer's bookkeeping): the part of the built-in 0.4M model's measured peaks that no model
# accounts for, 27-32 MiB in each of its five training steps (benchmarks/memory_plan_check.py)
CPU_PROCESS_BYTES = 30 << 20


@dataclass(frozen=True)
class ModelMemory:
    """What one model of a step holds on one device, in bytes."""

    name: str
    weights: int
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0  # the forward and backward pass with gradients (the update)
    kv_cache: int = 0  # generation (the rollout): it never coexists with the update's activations

    @property
    def peak(self) -> int:
        """This model's share of the step's peak (StepPlan.total), were it alone."""
        return self.weights + self.optimizer + max(self.gradients + self.kv_cache, self.activations)


def trained_model(name: str, parameters: int, lora_parameters: int, compute_bytes: int) -> ModelMemory:
    """Weights, gradients and AdamW state of a model trained in full (`lora_parameters` 0) or through LoRA
    adapters (float32, with their gradients and moments; the `parameters` of the base frozen in the
    compute dtype). `lora_parameters` counts every trained weight beside the base (adapters, a score head)."""
    if lora_parameters:
        return ModelMemory(name, weights=parameters * compute_bytes + lora_parameters * FLOAT32,
                           gradients=lora_parameters * FLOAT32, optimizer=lora_parameters * FLOAT32 * ADAM_MOMENTS)
    autocast_copies = parameters * compute_bytes if compute_bytes < FLOAT32 else 0
    return ModelMemory(name, weights=parameters * FLOAT32 + autocast_copies, gradients=parameters * FLOAT32,
                       optimizer=parameters * FLOAT32 * ADAM_MOMENTS)


def frozen_model(name: str, parameters: int, weight_bytes: int) -> ModelMemory:
    """A model only read (a reference, a reward model that scores): its weights, `weight_bytes` each."""
    return ModelMemory(name, weights=parameters * weight_bytes)


def block_activation_bytes_per_token(architecture: Architecture, compute_bytes: int) -> int:
    """Bytes autograd keeps for one token in one decoder block (module docstring)."""
    h = architecture.hidden_size
    norms = 2 * (FLOAT32 + 2 * compute_bytes) * h
    attention = 4 * architecture.num_heads * architecture.head_dim + 4 * architecture.kv_width
    mlp = (4 if architecture.gated else 2) * architecture.intermediate_size
    return norms + (attention + mlp) * compute_bytes


def activation_bytes(architecture: Architecture, rows: int, tokens: int, compute_bytes: int,
                     checkpointing: bool) -> int:
    """Activations of a forward pass with gradients over `rows` sequences of `tokens` tokens, every block."""
    per_block = rows * tokens * block_activation_bytes_per_token(architecture, compute_bytes)
    if not checkpointing:
        return architecture.num_layers * per_block
    block_inputs = architecture.num_layers * rows * tokens * architecture.hidden_size * compute_bytes
    return block_inputs + per_block


def logits_bytes(architecture: Architecture, rows: int, positions: int, bytes_each: int) -> int:
    """One tensor of logits over the vocabulary at `positions` positions of `rows` sequences."""
    return rows * positions * architecture.vocab_size * bytes_each


def kv_cache_bytes(architecture: Architecture, rows: int, tokens: int, compute_bytes: int) -> int:
    """Keys and values of every block for `rows` sequences of up to `tokens` tokens (generation)."""
    return 2 * architecture.num_layers * architecture.kv_width * rows * tokens * compute_bytes


@dataclass(frozen=True)
class StepPlan:
    """The memory one device needs for one training step: its models and what the device runs on top."""

    step: str  # the stage, as its line in `rlhf-pipeline run` names it
    models: tuple[ModelMemory, ...]
    runtime: int = 0  # the CUDA context on a GPU; the training process's own share on the CPU
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """The step's peak: weights and optimizer state of every model, plus the larger of two phases.
        Generation holds the KV cache and the gradients left from the last update (our engine frees them
        when the next minibatch starts). The update's backward pass fills the gradients as it frees the
        activations, so it holds about the larger of the two (activations at the start of the backward)."""
        def summed(field: str) -> int:
            return sum(getattr(model, field) for model in self.models)

        phases = max(summed("gradients") + summed("kv_cache"), summed("activations"))
        return summed("weights") + summed("optimizer") + phases + self.runtime
