"""Batched sampling from a causal LM, shared by the PPO rollouts and the evaluation."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from components.common.log_probs import SampledTokenStatistics
from components.common.models import pretrained_model

if TYPE_CHECKING:
    from components.common.vllm_rollouts import VllmEngine


@dataclass
class GeneratedBatch:
    """Prompts and the responses sampled for them.

    `response_mask` is 1 for every response token up to and including the first EOS (any of
    `eos_token_ids`); positions after it hold the pad id and are masked out, so pad == eos
    tokenizers are handled. `ended` is False for a response cut at `max_new_tokens`.
    """

    prompt_ids: torch.Tensor  # (B, P), left-padded
    prompt_mask: torch.Tensor  # (B, P)
    response_ids: torch.Tensor  # (B, R)
    response_mask: torch.Tensor  # (B, R)
    texts: list[str]  # decoded responses, special tokens removed
    ended: torch.Tensor  # (B,) bool, True where the response stopped at an EOS id
    eos_token_ids: tuple[int, ...]  # every id that ends a response
    # (B, R) each response token's log-probability under the sampling distribution and that distribution's
    # entropy, recorded while sampling (`record_log_probs`); 0 outside response_mask
    log_probs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    # (B, R) each response token's log-probability as the engine that sampled it computed it, where that
    # engine is not the trainer's model (vLLM: components/common/vllm_rollouts.py); 0 outside response_mask
    engine_log_probs: torch.Tensor | None = None

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)


def trim_left_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Drop the leading columns that are padding in every row (positions do not depend on them)."""
    first_real = int(attention_mask.any(dim=0).int().argmax())
    return input_ids[:, first_real:], attention_mask[:, first_real:]


def _as_ids(value) -> list[int]:
    """A config's `eos_token_id` (None, one id or a list of ids) as a list."""
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(token_id) for token_id in value]


def eos_token_ids(model, tokenizer) -> tuple[int, ...]:
    """Every id that ends a response: the tokenizer's EOS first, then those the model declares.

    Instruct models stop on several ids (e.g. Llama 3's <|eot_id|> besides <|end_of_text|>), listed
    in their generation config or config and often not the tokenizer's `eos_token`; a response
    that ends on one of them must stop there, not run on to `max_new_tokens`.
    """
    declared = (
        _as_ids(tokenizer.eos_token_id)
        + _as_ids(model.generation_config.eos_token_id)
        + _as_ids(getattr(model.config, "eos_token_id", None))
    )
    return tuple(dict.fromkeys(declared))


def mask_after_first_eos(response_ids: torch.Tensor, eos_token_ids: int | Sequence[int]) -> torch.Tensor:
    """1 up to and including the first EOS (the first of any of `eos_token_ids`) of each row, 0 after it."""
    eos = torch.as_tensor(eos_token_ids, device=response_ids.device)
    is_eos = torch.isin(response_ids, eos).int()
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


def _sampling_config(
    *, max_new_tokens: int, temperature: float, greedy: bool, pad_token_id: int, eos_token_ids: Sequence[int]
):
    """Plain sampling from softmax(logits / temperature), or plain argmax when `greedy`.

    The log-probs, PPO ratio and KL are computed from `logits / temperature` alone, so no other
    logits processor (top-k, top-p, repetition penalty, ...) may touch the sampled distribution:
    every sampler field is set here, and the processors left unset (None) are off, provided the
    model's own generation config is kept out (`_without_model_generation_defaults`).
    """
    from transformers import GenerationConfig

    sampler = {} if greedy else {"temperature": temperature, "top_k": 0, "top_p": 1.0}
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        min_length=0,
        do_sample=not greedy,
        num_beams=1,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        pad_token_id=pad_token_id,
        eos_token_id=list(eos_token_ids),
        **sampler,
    )


@contextmanager
def _without_model_generation_defaults(model) -> Iterator[None]:
    """Hide the model's `generation_config` from `generate` while it runs.

    transformers (`GenerationMixin._prepare_generation_config`) fills every field our config leaves
    None from `model.generation_config`, and None is the only "off" value of many processors
    (suppress_tokens, bad_words_ids, forced_bos_token_id, min_p, sequence_bias, ...): a checkpoint's
    generation_config.json would change what is sampled. A bare GenerationConfig in its place leaves
    only transformers' global defaults, all neutral but top_k=50, which `_sampling_config` sets to 0.
    A PEFT model generates through its base model, which holds the config; it is restored afterwards,
    so a model saved later keeps its own.
    """
    from transformers import GenerationConfig

    holder = pretrained_model(model)
    own = holder.generation_config
    holder.generation_config = GenerationConfig()
    try:
        yield
    finally:
        holder.generation_config = own


def _prompt_cache_shared_by_groups(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, group_size: int):
    """The KV cache of every prompt but its last token, computed once per group of `group_size` identical
    prompts (GRPO/RLOO sample several responses to one prompt) and repeated for each member.

    `generate` then prefills only the last prompt token of each row: the rows' caches are those it
    would have computed itself (same tokens, same positions: the attention mask's running count, as
    `generate` numbers them), so decoding proceeds as without sharing, for a group-size-th of the
    prompt's prefill.
    """
    from transformers import DynamicCache

    rows, length = prompt_ids.shape
    firsts = prompt_ids[::group_size]
    if rows % group_size or not torch.equal(prompt_ids.view(-1, group_size, length), firsts[:, None].expand(-1, group_size, -1)):
        raise ValueError(f"the prompts do not come in groups of {group_size} identical rows")
    ids, mask = firsts[:, :-1], prompt_mask[::group_size, :-1]
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    cache.batch_repeat_interleave(group_size)
    return cache


def finished_batch(tokenizer, prompt_ids, prompt_mask, response_ids: torch.Tensor, stop_ids: tuple[int, ...]) -> GeneratedBatch:
    """The batch of sampled `response_ids` (B, R): masked after the first EOS, pad ids there, decoded."""
    device = response_ids.device
    if response_ids.shape[1] == 0:  # every prompt produced nothing at all
        response_ids = torch.full((len(prompt_ids), 1), stop_ids[0], device=device)
    ended = torch.isin(response_ids, torch.as_tensor(stop_ids, device=device)).any(dim=1)
    response_mask = mask_after_first_eos(response_ids, stop_ids)
    response_ids = response_ids.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(response_ids, skip_special_tokens=True)
    return GeneratedBatch(prompt_ids, prompt_mask, response_ids, response_mask, texts, ended, stop_ids)


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
    group_size: int = 1,
    record_log_probs: bool = False,
    engine: "VllmEngine | None" = None,
) -> GeneratedBatch:
    """Sample (or decode greedily) one response per prompt, at most `max_new_tokens` long.

    Sampling is from softmax(logits / temperature) exactly, whatever the model's generation config
    asks for, and a response ends at the first of any EOS id the tokenizer or the model declares.
    `group_size` > 1 says that the prompts come in runs of that many identical ones (GRPO/RLOO's
    groups): their prompt is then prefilled once per group (_prompt_cache_shared_by_groups).
    `record_log_probs` fills the batch's `log_probs` and `entropy` as the tokens are drawn
    (`SampledTokenStatistics`), so that no second pass over the responses is needed for them.

    With an `engine` (vLLM, holding the same weights as `model`) the engine samples instead, from the
    same prompt tokens with the same settings, and the batch carries its log-probs as `engine_log_probs`.
    """
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, max_prompt_tokens, device)
    stop_ids = eos_token_ids(model, tokenizer)
    if engine is not None:
        response_ids, engine_log_probs = engine.sample(
            prompt_ids, prompt_mask, max_new_tokens=max_new_tokens, temperature=0.0 if greedy else temperature,
            stop_ids=stop_ids, pad_token_id=tokenizer.pad_token_id,
        )
        batch = finished_batch(tokenizer, prompt_ids, prompt_mask, response_ids.to(device), stop_ids)
        batch.engine_log_probs = engine_log_probs.to(device) * batch.response_mask
        return batch
    config = _sampling_config(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        greedy=greedy,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_ids=stop_ids,
    )
    options = {}
    if group_size > 1 and prompt_ids.shape[1] > 1:
        options["past_key_values"] = _prompt_cache_shared_by_groups(model, prompt_ids, prompt_mask, group_size)
    statistics = SampledTokenStatistics(temperature) if record_log_probs else None
    if statistics is not None:
        from transformers import LogitsProcessorList

        options["logits_processor"] = LogitsProcessorList([statistics])
    with _without_model_generation_defaults(model):
        output = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config, **options)
    batch = finished_batch(tokenizer, prompt_ids, prompt_mask, output[:, prompt_ids.shape[1] :], stop_ids)
    if statistics is not None:
        batch.log_probs, batch.entropy = statistics.finish(batch.response_ids, batch.response_mask)
    return batch
