"""Log-probabilities and entropies of tokens under a causal LM: the one place the RL engine, DPO's
implicit reward and the evaluation take them.

On a real model the logits are the largest tensors of a training step (rows x tokens x a vocabulary
of 50k-250k). `token_log_probs` therefore never builds a log-softmax of the whole vocabulary: it
gathers the chosen tokens' logits and takes the log-sum-exp a few rows at a time, in float32 whatever
the logits' dtype, with the sampling temperature folded in; its backward recomputes the softmax chunk
by chunk. The step keeps the logits (which the model made anyway) and their gradient, and no float32
copy, tempered copy or log-softmax of them. `token_entropy` works the same way, without gradients.
"""

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from components.common.generation import GeneratedBatch

# Elements of a float32 temporary per chunk (16 MiB): a few rows of a real vocabulary at a time, and the
# whole of a small model's logits in one go.
CHUNK_ELEMENTS = 1 << 22


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, as `generate` counts them for left-padded prompts."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def _row_chunks(logits: torch.Tensor) -> list[slice]:
    """Slices of the leading (batch) dimension whose float32 copies hold about CHUNK_ELEMENTS each."""
    rows = logits.shape[0]
    per_row = max(1, logits[0].numel()) if rows else 1
    step = max(1, CHUNK_ELEMENTS // per_row)
    return [slice(start, start + step) for start in range(0, rows, step)]


def _precision(logits: torch.Tensor) -> torch.dtype:
    """float32, or float64 for float64 logits (as gradient checks use)."""
    return torch.promote_types(logits.dtype, torch.float32)


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """`logits` at least in float32, divided by the temperature; a new tensor only where one is needed.
    (A division, not a product with 1 / temperature: the same floats as `logits / temperature`.)"""
    chunk = logits.to(_precision(logits))
    return chunk if temperature == 1.0 else chunk / temperature


class _ChosenTokenLogProbs(torch.autograd.Function):
    """log softmax(logits / T)[token], chunk by chunk; saves the logits (not a copy) and the
    log-sum-exps, and recomputes each chunk's softmax in the backward."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
        log_sum_exp = torch.empty(tokens.shape, dtype=_precision(logits), device=logits.device)
        chosen = torch.empty_like(log_sum_exp)
        for rows in _row_chunks(logits):
            scaled = _tempered(logits[rows], temperature)
            log_sum_exp[rows] = torch.logsumexp(scaled, dim=-1)
            chosen[rows] = scaled.gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(logits, tokens, log_sum_exp)
        ctx.temperature = temperature
        return chosen - log_sum_exp

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        logits, tokens, log_sum_exp = ctx.saved_tensors
        temperature = ctx.temperature
        grad_logits = torch.empty_like(logits)
        grad_output = grad_output.to(log_sum_exp.dtype)
        for rows in _row_chunks(logits):
            # d/dz [z_token - logsumexp(z)] = onehot(token) - softmax(z), with z = logits / T
            weight = grad_output[rows].unsqueeze(-1)
            grad = (_tempered(logits[rows], temperature) - log_sum_exp[rows].unsqueeze(-1)).exp_()
            grad.mul_(-weight).scatter_add_(-1, tokens[rows].unsqueeze(-1), weight)
            if temperature != 1.0:
                grad.div_(temperature)
            grad_logits[rows] = grad
        return grad_logits, None, None


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token) under softmax(`logits` / `temperature`), in float32 (float64 for float64 logits):
    logits (batch, length, vocab) of any float dtype, tokens (batch, length); differentiable with
    respect to the logits."""
    return _ChosenTokenLogProbs.apply(logits, tokens, temperature)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy in nats of softmax(`logits` / `temperature`) at each position where `mask` (batch, length)
    is 1, else 0; float32, outside the autograd graph. Positions after a chunk's longest real response
    (masks are prefixes) are not computed."""
    entropy = torch.zeros(mask.shape, dtype=_precision(logits), device=logits.device)
    lengths = mask.sum(dim=1)
    for rows in _row_chunks(logits):
        length = int(lengths[rows].max()) if lengths[rows].numel() else 0
        if length == 0:
            continue
        scaled = _tempered(logits[rows, :length], temperature)
        log_probs = scaled - torch.logsumexp(scaled, dim=-1, keepdim=True)
        entropy[rows, :length] = -(log_probs.exp() * log_probs).sum(dim=-1)
    return entropy * mask.to(entropy.dtype)


class SampledTokenStatistics:
    """A logits processor for `generate` that records, while decoding, the log-probability of each sampled
    token under softmax(logits / `temperature`) and the entropy of the distribution it was drawn from:
    what `token_log_probs` and `token_entropy` give on a forward pass over the finished responses (up to
    the rounding of attention over cached keys), without that pass.

    `generate` hands it each step's logits (float32, before the temperature) and samples afterwards, so the
    token drawn at one step is seen at the next call, as the last of `input_ids`: a step's logits are held
    until then (one row of the vocabulary per sequence), the last step's until `finish`.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature if temperature > 0 else 1.0
        self._held: torch.Tensor | None = None
        self._log_probs: list[torch.Tensor] = []
        self._entropy: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._settle(input_ids[:, -1])
        self._held = scores
        return scores

    def _settle(self, tokens: torch.Tensor) -> None:
        if self._held is None:
            return
        logits = self._held[:, None]
        self._log_probs.append(token_log_probs(logits, tokens[:, None], self.temperature)[:, 0])
        self._entropy.append(token_entropy(logits, torch.ones_like(tokens[:, None]), self.temperature)[:, 0])
        self._held = None

    def finish(self, response_ids: torch.Tensor, response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, R) log-probabilities and entropies of the responses' tokens, 0 where `response_mask` is 0.
        Steps that `generate` took and then undid (past the last kept token) are dropped."""
        length = response_ids.shape[1]
        if len(self._log_probs) < length:
            self._settle(response_ids[:, len(self._log_probs)])
        if len(self._log_probs) < length:  # no step was recorded (a response of nothing)
            zeros = torch.zeros(response_ids.shape, device=response_ids.device)
            return zeros, zeros.clone()
        outside = response_mask == 0
        log_probs = torch.stack(self._log_probs[:length], dim=1).masked_fill(outside, 0.0)
        entropy = torch.stack(self._entropy[:length], dim=1).masked_fill(outside, 0.0)
        return log_probs, entropy


@torch.no_grad()
def response_log_probs(model, batch: "GeneratedBatch", temperature: float) -> torch.Tensor:
    """(B, R) log-probabilities the model gives each response token, 0 where the response mask is 0.

    Logits are divided by the sampling temperature (when it is positive), so the log-probabilities
    are those of the distribution the responses were sampled from. Position ids follow the left
    padding, as during generation.
    """
    device = next(model.parameters()).device
    input_ids = batch.input_ids.to(device)
    attention_mask = batch.attention_mask.to(device)
    response_length = batch.response_ids.shape[1]
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_for(attention_mask),
        logits_to_keep=response_length + 1,  # no LM head over the prompt
    ).logits[:, :-1]
    scores = token_log_probs(logits, batch.response_ids.to(device), temperature if temperature > 0 else 1.0)
    return scores.masked_fill(batch.response_mask.to(device) == 0, 0.0).cpu()
