"""When a training step shards (FSDP2) and the update's activation checkpointing. Sharded training itself
runs in two processes: tests/test_distributed_training.py and tests/test_checkpoints.py."""

import pytest
import torch

from components.common.errors import UserInputError
from components.common.models import Placement
from components.common.sharding import AUTO, FSDP, NONE, decoder_layers, training_state_bytes, uses_sharding
from components.tune_policy.config import PolicyTuningConfig

CPU = Placement(torch.device("cpu"), torch.float32)
GPU_80GB = 80 << 30


@pytest.mark.parametrize("setting, processes, replica_gib, device, shards", [
    (NONE, 8, 70, GPU_80GB, False),  # never
    (FSDP, 1, 70, GPU_80GB, False),  # one process has nobody to share with
    (FSDP, 2, 1, GPU_80GB, True),  # asked for, even where a replica fits
    (AUTO, 2, 41, GPU_80GB, True),  # over half the GPU
    (AUTO, 2, 39, GPU_80GB, False),
    (AUTO, 2, 500, None, False),  # the CPU: trying the pipeline out
])
def test_when_a_step_shards(setting, processes, replica_gib, device, shards):
    assert uses_sharding(setting, processes, replica_gib << 30, device) is shards


def test_a_sharding_setting_other_than_the_three_is_refused_before_training():
    with pytest.raises(UserInputError, match="sharding must be one of \\('auto', 'none', 'fsdp'\\), got 'zero3'"):
        PolicyTuningConfig(steps=1, sharding="zero3").validate()


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_training_state_counts_weights_and_the_gradients_and_adam_state_of_the_trained_ones(tiny_causal_lm, lora_rank):
    from components.tune_policy.policy_model import load_policy

    policy = load_policy(str(tiny_causal_lm), PolicyTuningConfig(steps=1, lora_rank=lora_rank), CPU)
    weights = sum(p.numel() for p in policy.parameters())
    trained = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    assert 0 < trained < weights if lora_rank else trained == weights
    assert training_state_bytes(policy) == 4 * weights + 12 * trained


def test_decoder_layers_are_found_through_a_peft_wrapper(tiny_causal_lm):
    from components.tune_policy.policy_model import load_policy

    for lora_rank in (0, 2):
        policy = load_policy(str(tiny_causal_lm), PolicyTuningConfig(steps=1, lora_rank=lora_rank), CPU)
        layers = decoder_layers(policy.language_model)
        assert len(layers) == policy.language_model.config.num_hidden_layers
        assert {type(layer).__name__ for layer in layers} == {"LlamaDecoderLayer"}


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_activation_checkpointing_recomputes_each_layer_in_the_backward_and_changes_no_gradient(tiny_causal_lm, lora_rank):
    """The update's forward keeps no layer activations: each layer runs again in the backward pass. The
    gradients are the same; forwards without gradients (rollout log-probs) and generation are untouched."""
    from components.tune_policy.policy_model import load_policy

    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 5, 7, 9, 11, 12]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    results = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        config = PolicyTuningConfig(steps=1, lora_rank=lora_rank, activation_checkpointing=checkpointing)
        policy = load_policy(str(tiny_causal_lm), config, CPU)
        mlp = decoder_layers(policy.language_model)[0].mlp
        calls, saved = [], []  # the recomputation runs modules' forward methods, without their hooks
        mlp_forward = mlp.forward
        mlp.forward = lambda *args, **kwargs: (calls.append(1), mlp_forward(*args, **kwargs))[1]
        with torch.autograd.graph.saved_tensors_hooks(lambda t: (saved.append(1), t)[1], lambda t: t):
            logits, values = policy(ids, mask, response_length=3)
        forwards = len(calls)
        (logits.logsumexp(-1).sum() + values.sum()).backward()
        grads = {name: p.grad.clone() for name, p in policy.named_parameters() if p.requires_grad}
        with torch.no_grad():
            policy(ids, mask, response_length=3)
        assert not any(layer.training for layer in decoder_layers(policy.language_model))  # left as found
        results[checkpointing] = forwards, len(calls) - forwards, len(saved), grads
    (forwards, later, kept, plain) = results[False]
    (checkpointed_forwards, checkpointed_later, checkpointed_kept, checkpointed) = results[True]
    assert (forwards, later) == (1, 1)  # the forward, then the forward without gradients
    assert (checkpointed_forwards, checkpointed_later) == (1, 2)  # the backward ran the layer once more
    assert checkpointed_kept < kept / 2  # tensors autograd keeps for the backward
    assert plain.keys() == checkpointed.keys()
    for name, grad in plain.items():
        assert torch.allclose(checkpointed[name], grad, rtol=1e-5, atol=1e-7), name
