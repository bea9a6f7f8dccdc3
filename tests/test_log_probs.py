"""The log-probabilities and entropies every stage takes (components/common/log_probs.py): equal to the
textbook log_softmax(...).gather(...), with temperature, in float32 and bf16, with the right gradient,
and without keeping a vocabulary-sized copy of the logits for the backward pass."""

import pytest
import torch

from components.common import log_probs
from components.common.log_probs import token_entropy, token_log_probs


def reference_log_probs(logits, tokens, temperature=1.0):
    """The textbook computation, in float32 (float64 for float64 logits)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return torch.log_softmax(logits / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def logits_and_tokens(rows=3, length=5, vocabulary=11, scale=4.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, length, vocabulary, generator=generator) * scale
    tokens = torch.randint(0, vocabulary, (rows, length), generator=generator)
    return logits, tokens


@pytest.fixture(params=[False, True], ids=["one chunk", "a chunk per row"])
def chunking(request, monkeypatch):
    """Run each test with the whole batch in one chunk and with one row per chunk."""
    if request.param:
        monkeypatch.setattr(log_probs, "CHUNK_ELEMENTS", 1)
    return request.param


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.6])
def test_float32_log_probs_equal_log_softmax_gather(temperature, chunking):
    logits, tokens = logits_and_tokens()
    result = token_log_probs(logits, tokens, temperature)
    assert result.dtype == torch.float32
    # 1e-6, and a float32 rounding (1e-6 relative) where log-probs reach -20
    torch.testing.assert_close(result, reference_log_probs(logits, tokens, temperature), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_bf16_log_probs_are_computed_in_float32(temperature, chunking):
    logits, tokens = logits_and_tokens(scale=1.0)
    low = logits.bfloat16()
    result = token_log_probs(low, tokens, temperature)
    assert result.dtype == torch.float32
    # exact for the bf16 values the model produced, and within bf16's rounding of the float32 logits
    torch.testing.assert_close(result, reference_log_probs(low, tokens, temperature), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(result, reference_log_probs(logits, tokens, temperature), atol=1e-2, rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_gradient_equals_that_of_log_softmax_gather(temperature, chunking):
    logits, tokens = logits_and_tokens(rows=2, length=3, vocabulary=7, seed=1)
    logits = logits.double().requires_grad_(True)
    torch.autograd.gradcheck(lambda x: token_log_probs(x, tokens, temperature), (logits,))
    weights = torch.randn(tokens.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    (ours,) = torch.autograd.grad((token_log_probs(logits, tokens, temperature) * weights).sum(), logits)
    (textbook,) = torch.autograd.grad((reference_log_probs(logits, tokens, temperature) * weights).sum(), logits)
    torch.testing.assert_close(ours, textbook, atol=1e-12, rtol=1e-12)


def test_a_slice_of_the_model_output_gets_its_gradient(chunking):
    """The engine passes `logits[:, :-1]` (a view); the gradient reaches the whole output, 0 on the last."""
    logits, tokens = logits_and_tokens(length=6)
    logits.requires_grad_(True)
    token_log_probs(logits[:, :-1], tokens[:, :-1], 0.7).sum().backward()
    expected = torch.zeros_like(logits)
    view = logits.detach()[:, :-1].clone().requires_grad_(True)
    reference_log_probs(view, tokens[:, :-1], 0.7).sum().backward()
    expected[:, :-1] = view.grad
    torch.testing.assert_close(logits.grad, expected)


def test_no_vocabulary_sized_copy_is_kept_for_the_backward():
    """What autograd keeps is the logits themselves (no float32, tempered or log-softmax copy) plus one
    float per position: memory a real vocabulary would multiply."""
    logits, tokens = logits_and_tokens(rows=2, length=4, vocabulary=1000)
    logits = logits.bfloat16().requires_grad_(True)
    saved = []

    def keep(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        token_log_probs(logits, tokens, 0.7)
    others = [t for t in saved if t.untyped_storage().data_ptr() != logits.untyped_storage().data_ptr()]
    assert any(t.untyped_storage().data_ptr() == logits.untyped_storage().data_ptr() for t in saved)
    assert sum(t.numel() for t in others) <= 2 * tokens.numel()


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_entropy_on_real_tokens_only(temperature, chunking):
    logits, _ = logits_and_tokens(rows=3, length=5)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    log_softmax = torch.log_softmax(logits / temperature, dim=-1)
    expected = -(log_softmax.exp() * log_softmax).sum(-1) * mask
    logits.requires_grad_(True)
    entropy = token_entropy(logits, mask, temperature)
    assert not entropy.requires_grad
    torch.testing.assert_close(entropy, expected, atol=1e-5, rtol=0)
    assert (entropy[mask == 0] == 0).all()
