"""Log-probabilities of given tokens under a causal LM, as PPO and the evaluation both need them."""

import torch


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, as `generate` counts them for left-padded prompts."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under `logits` (batch, length, vocab), computed in float32."""
    logits = logits.float()
    chosen = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)
