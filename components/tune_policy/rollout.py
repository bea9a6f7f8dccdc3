"""One PPO rollout: sample responses, score them, and turn the scores into advantages and returns."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.generation import generate_responses
from components.common.log_probs import token_log_probs
from components.tune_policy.config import PPOConfig
from components.tune_policy.policy_model import PolicyWithValueHead, ReferenceLogprobs
from components.tune_policy.ppo_math import (
    generalized_advantages,
    kl_shaped_rewards,
    masked_whiten,
)

# (prompts, responses) -> one float score per pair; RewardScorer.score in production.
ScoreFunction = Callable[[list[Prompt], list[str]], torch.Tensor]


@dataclass
class Rollout:
    """Everything the PPO update needs about one batch of sampled responses, plus what is logged."""

    input_ids: torch.Tensor  # (B, P + R) prompt and response
    attention_mask: torch.Tensor  # (B, P + R)
    response_ids: torch.Tensor  # (B, R)
    response_mask: torch.Tensor  # (B, R), 1 up to and including the first EOS
    logprobs: torch.Tensor  # (B, R) under the sampling policy, at the sampling temperature
    values: torch.Tensor  # (B, R)
    advantages: torch.Tensor  # (B, R), whitened if the config says so
    returns: torch.Tensor  # (B, R)
    scores: torch.Tensor  # (B,) reward-model scores, after the missing-EOS penalty
    kl: torch.Tensor  # (B, R) per-token logp - logp_ref (zeros without a reference)
    truncated: torch.Tensor  # (B,) True where the response hit max_new_tokens without an EOS
    texts: list[str]
    generation_seconds: float
    seconds: float

    @property
    def size(self) -> int:
        return self.response_ids.shape[0]


def trim_left_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Drop the leading columns that are padding in every row (positions do not depend on them)."""
    first_real = int(attention_mask.any(dim=0).int().argmax())
    return input_ids[:, first_real:], attention_mask[:, first_real:]


@torch.no_grad()
def policy_logprobs_and_values(
    policy: PolicyWithValueHead, input_ids, attention_mask, response_ids, config: PPOConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the sampled tokens and the values before them, `forward_batch_size` rows at a time."""
    logprobs, values = [], []
    for rows in torch.arange(input_ids.shape[0]).split(config.forward_batch_size):
        ids, mask = trim_left_padding(input_ids[rows], attention_mask[rows])
        logits, row_values = policy(ids, mask, response_ids.shape[1])
        logprobs.append(token_log_probs(logits / config.temperature, response_ids[rows]))
        values.append(row_values)
    return torch.cat(logprobs), torch.cat(values)


@torch.no_grad()
def reference_logprobs_of(
    reference: ReferenceLogprobs, input_ids, attention_mask, response_ids, config: PPOConfig
) -> torch.Tensor:
    chunks = []
    for rows in torch.arange(input_ids.shape[0]).split(config.forward_batch_size):
        ids, mask = trim_left_padding(input_ids[rows], attention_mask[rows])
        chunks.append(reference(ids, mask, response_ids[rows]))
    return torch.cat(chunks)


def collect_rollout(
    policy: PolicyWithValueHead,
    reference: ReferenceLogprobs | None,
    score: ScoreFunction,
    formatter: PromptFormatter,
    prompts: list[Prompt],
    config: PPOConfig,
    processes: TrainingProcesses = TrainingProcesses(),
) -> Rollout:
    """Sample one response per prompt and compute its rewards, advantages and returns.

    The policy reads each prompt as `formatter` renders it (its chat template, or plain text); the
    score function receives the prompts themselves, so a reward model renders them its own way.

    With several training processes each collects its own share of the batch's prompts, and the
    advantages are whitened with the statistics of the whole batch.

    The reward-model score lands on the last response token: the EOS, or the last token allowed
    by `max_new_tokens` for a response cut there (which also pays `missing_eos_penalty`).
    """
    started = time.perf_counter()
    with policy.autocast():
        batch = generate_responses(
            policy.language_model,
            formatter.tokenizer,
            formatter.prompts(prompts),
            max_new_tokens=config.max_new_tokens,
            max_prompt_tokens=config.max_prompt_tokens,
            temperature=config.temperature,
        )
    generation_seconds = time.perf_counter() - started
    input_ids, attention_mask = batch.input_ids, batch.attention_mask
    response_ids, response_mask = batch.response_ids, batch.response_mask
    logprobs, values = policy_logprobs_and_values(policy, input_ids, attention_mask, response_ids, config)
    ref_logprobs = None
    if reference is not None:
        ref_logprobs = reference_logprobs_of(reference, input_ids, attention_mask, response_ids, config)

    truncated = ~batch.ended
    scores = score(prompts, batch.texts).to(logprobs.device, torch.float32)
    scores = scores - config.missing_eos_penalty * truncated.float()

    rewards, kl = kl_shaped_rewards(scores, logprobs, ref_logprobs, response_mask, config.kl_coeff)
    advantages, returns = generalized_advantages(
        rewards, values, response_mask, config.gamma, config.gae_lambda
    )
    if config.whiten_advantages:
        advantages = masked_whiten(advantages, response_mask, processes.total)
    return Rollout(
        input_ids=input_ids,
        attention_mask=attention_mask,
        response_ids=response_ids,
        response_mask=response_mask,
        logprobs=logprobs,
        values=values * response_mask,
        advantages=advantages,
        returns=returns,
        scores=scores,
        kl=kl,
        truncated=truncated,
        texts=batch.texts,
        generation_seconds=generation_seconds,
        seconds=time.perf_counter() - started,
    )
