"""Sampling responses from a policy and reading its log-probabilities of given responses."""

import dataclasses
import gc
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.generation import GeneratedBatch, generate_responses
from components.common.log_probs import position_ids_for, token_log_probs
from components.common.models import Placement, load_tokenizer
from components.evaluate.config import EvaluationConfig

TENSOR_FIELDS = ("prompt_ids", "prompt_mask", "response_ids", "response_mask", "ended")  # moved to the CPU


@dataclass
class PolicySamples:
    """One response per prompt, kept on the CPU batch by batch (in prompt order)."""

    batches: list[GeneratedBatch]

    @property
    def texts(self) -> list[str]:
        return [text for batch in self.batches for text in batch.texts]

    @property
    def completion_ids(self) -> list[list[int]]:
        """Per prompt, the response's token ids without padding: up to and including the EOS when it ended."""
        return [ids[mask.bool()].tolist() for b in self.batches for ids, mask in zip(b.response_ids, b.response_mask)]

    @property
    def token_counts(self) -> list[int]:
        """Response tokens before the closing EOS, per prompt."""
        counts = [b.response_lengths - b.ended.long() for b in self.batches]
        return torch.cat(counts).tolist()

    @property
    def truncated(self) -> list[bool]:
        """Per prompt, whether the response was cut at max_new_tokens before any EOS."""
        return torch.cat([~b.ended for b in self.batches]).tolist()


def load_policy(source: str, placement: Placement, use_chat_template: str):
    """A causal LM in eval mode on the placement's device, and the formatter of its prompts."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(source, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=placement.dtype)
    model.to(placement.device).eval()
    return model, PromptFormatter(tokenizer, use_chat_template, source)


def free_accelerator_memory() -> None:
    """Return the memory of models that went out of scope before the next one is loaded."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _to_cpu(batch: GeneratedBatch) -> GeneratedBatch:
    return dataclasses.replace(batch, **{name: getattr(batch, name).cpu() for name in TENSOR_FIELDS})


def sample_policy(
    model, formatter: PromptFormatter, prompts: list[Prompt], config: EvaluationConfig, name: str
) -> PolicySamples:
    """One response per prompt, each prompt rendered the policy's way (chat template or plain text).

    torch is seeded first so that every policy sees the same random stream.
    """
    torch.manual_seed(config.seed)
    size = config.generation_batch_size
    batches = []
    for start in tqdm(range(0, len(prompts), size), desc=f"{name} policy: generating", unit="batch"):
        batch = generate_responses(
            model,
            formatter.tokenizer,
            formatter.prompts(prompts[start : start + size]),
            max_new_tokens=config.max_new_tokens,
            max_prompt_tokens=config.max_prompt_tokens,
            temperature=config.temperature if config.temperature > 0 else 1.0,
            greedy=config.temperature == 0,
        )
        batches.append(_to_cpu(batch))
    return PolicySamples(batches)


@torch.no_grad()
def response_log_probs(model, batch: GeneratedBatch, temperature: float) -> torch.Tensor:
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


def log_probs_of_samples(model, samples: PolicySamples, temperature: float, name: str) -> list[torch.Tensor]:
    """`response_log_probs` for every batch of `samples`."""
    return [
        response_log_probs(model, batch, temperature)
        for batch in tqdm(samples.batches, desc=f"{name} policy: log-probabilities", unit="batch")
    ]
