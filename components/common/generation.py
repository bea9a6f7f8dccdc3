"""Batched sampling from a causal LM, shared by the PPO rollouts and the evaluation."""

from dataclasses import dataclass

import torch


@dataclass
class GeneratedBatch:
    """Prompts and the responses sampled for them.

    `response_mask` is 1 for every response token up to and including the first EOS; positions
    after it hold the pad id and are masked out, so pad == eos tokenizers are handled.
    """

    prompt_ids: torch.Tensor  # (B, P), left-padded
    prompt_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, R)
    response_mask: torch.Tensor  # (B, R)
    texts: list[str]  # decoded responses, special tokens removed

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)


def mask_after_first_eos(response_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 up to and including the first EOS of each row, 0 after it."""
    is_eos = (response_ids == eos_token_id).int()
    eos_seen_before = torch.cumsum(is_eos, dim=1) - is_eos
    return (eos_seen_before == 0).long()


def encode_prompts(tokenizer, prompts: list[str], max_prompt_tokens: int, device: torch.device):
    """Left-padded prompt ids; a prompt over `max_prompt_tokens` keeps its end (where the task cue is)."""
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    encoded = tokenizer(
        prompts, return_tensors="pt", padding=True, truncation=True, max_length=max_prompt_tokens
    )
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


@torch.no_grad()
def generate_responses(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    max_prompt_tokens: int,
    temperature: float = 1.0,
    greedy: bool = False,
) -> GeneratedBatch:
    """Sample (or decode greedily) one response per prompt, at most `max_new_tokens` long."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, max_prompt_tokens, device)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        temperature=temperature if not greedy else None,
        top_k=0 if not greedy else None,
        top_p=1.0 if not greedy else None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    output = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config)
    response_ids = output[:, prompt_ids.shape[1] :]
    if response_ids.shape[1] == 0:  # every prompt produced nothing at all
        response_ids = torch.full((len(prompts), 1), tokenizer.eos_token_id, device=device)
    response_mask = mask_after_first_eos(response_ids, tokenizer.eos_token_id)
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return GeneratedBatch(prompt_ids, prompt_mask, response_ids, response_mask.to(device), texts)
