"""One rollout: sample responses, score them, and turn the scores into advantages (and PPO's returns).

What differs per algorithm is only how scores become advantages: PPO shapes per-token rewards with the
KL and runs GAE against its value head; GRPO and RLOO turn each group's rewards into one advantage per
response (components/tune_policy/group_math.py) and put it on every token of that response.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.generation import generate_responses, trim_left_padding
from components.common.log_probs import token_entropy, token_log_probs
from components.common.vllm_rollouts import VllmEngine
from components.tune_policy.config import PolicyTuningConfig
from components.tune_policy.policy_model import PolicyWithValueHead, ReferenceLogprobs
from components.common.errors import UserInputError
from components.tune_policy.importance_sampling import engine_importance_weights
from components.tune_policy.group_math import (
    check_some_rewarded,
    group_advantages,
    leave_one_out_advantages,
)
from components.tune_policy.ppo_math import (
    generalized_advantages,
    kl_shaped_rewards,
    masked_whiten,
)
from components.tune_policy.rewards import RolloutRewards

# (prompts, responses) -> one float score per pair (NaN: no reward); RewardScorer.score, or a
# RolloutRewards, which also reads the responses' token ids and the prompt rows' columns.
ScoreFunction = Callable[[list[Prompt], list[str]], torch.Tensor]


@dataclass
class Rollout:
    """Everything the update needs about one batch of sampled responses, plus what is logged.

    GRPO and RLOO rollouts have no values and returns (None), and keep the reference log-probs for
    GRPO's KL loss term."""

    input_ids: torch.Tensor  # (B, P + R) prompt and response
    attention_mask: torch.Tensor  # (B, P + R)
    response_ids: torch.Tensor  # (B, R)
    response_mask: torch.Tensor  # (B, R), 1 up to and including the first EOS
    logprobs: torch.Tensor  # (B, R) under the sampling policy, at the sampling temperature
    values: torch.Tensor | None  # (B, R); None without a value head
    advantages: torch.Tensor  # (B, R), whitened if the config says so (PPO); a row's one advantage (GRPO, RLOO)
    returns: torch.Tensor | None  # (B, R); None without a value head
    scores: torch.Tensor  # (B,) rewards, after the missing-EOS penalty; NaN: no reward
    kl: torch.Tensor  # (B, R) per-token logp - logp_ref (zeros without a reference)
    entropy: torch.Tensor  # (B, R) of the sampling policy at each real response token (logged only)
    truncated: torch.Tensor  # (B,) True where the response hit max_new_tokens without an EOS
    texts: list[str]
    generation_seconds: float
    seconds: float
    ref_logprobs: torch.Tensor | None = None  # (B, R), kept for GRPO's KL loss term
    # (B,) the weight of each response's policy loss where vLLM sampled it (importance_sampling.py); None: 1
    importance_weights: torch.Tensor | None = None
    engine_statistics: dict[str, float] | None = None  # the importance ratio's figures, logged with the step
    engine_log_probs: torch.Tensor | None = None  # (B, R) vLLM's log-probs of its samples; None: transformers sampled
    # True while `logprobs`, `entropy`, `kl`, `importance_weights` and `engine_statistics` wait for the update's
    # forward pass (vLLM sampled and one optimizer step takes the whole rollout: that pass is the sampling
    # policy's, so a pass of the rollout's own would compute the same log-probs twice). See `settle_log_probs`.
    log_probs_from_update: bool = False

    @property
    def size(self) -> int:
        return self.response_ids.shape[0]

    @torch.no_grad()
    def settle_log_probs(self, rows: torch.Tensor, logprobs: torch.Tensor, logits: torch.Tensor,
                         config: PolicyTuningConfig) -> None:
        """The update's forward of `rows`, before any optimizer step: their log-probs become the rollout's
        (the ratio's denominator, as TRL takes `per_token_logps.detach()` with one iteration), with the
        entropy and the importance weights they give."""
        mask = self.response_mask[rows]
        self.logprobs[rows] = logprobs.detach()
        self.entropy[rows] = token_entropy(logits.detach(), mask, config.temperature)
        self.importance_weights[rows], _ = engine_importance_weights(
            self.logprobs[rows], self.engine_log_probs[rows], mask, config.importance_sampling_cap
        )

    def finish_log_probs(self, config: PolicyTuningConfig) -> None:
        """After the update settled every row: the KL to the reference and the importance ratio's figures."""
        self.kl = response_kl(self.logprobs, self.ref_logprobs, self.response_mask)
        _, self.engine_statistics = engine_importance_weights(
            self.logprobs, self.engine_log_probs, self.response_mask, config.importance_sampling_cap
        )
        self.log_probs_from_update = False


def response_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None, response_mask: torch.Tensor) -> torch.Tensor:
    """Per token logp - logp_ref on the response's real tokens (zeros without a reference)."""
    if ref_logprobs is None:
        return torch.zeros_like(logprobs)
    return (logprobs - ref_logprobs) * response_mask.to(logprobs.dtype)


@torch.no_grad()
def policy_logprobs_and_values(
    policy: PolicyWithValueHead, input_ids, attention_mask, response_ids, response_mask, config: PolicyTuningConfig
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Log-probabilities of the sampled tokens, the values before them (None without a value head) and
    the policy's entropy at each real response token, `forward_batch_size` rows at a time.

    The entropy is a statistic only: taken here, from logits the rollout computes anyway and outside
    any autograd graph, the update never spends time or memory on it."""
    logprobs, values, entropy = [], [], []
    for rows in torch.arange(input_ids.shape[0]).split(config.forward_batch_size):
        ids, mask = trim_left_padding(input_ids[rows], attention_mask[rows])
        logits, row_values = policy(ids, mask, response_ids.shape[1])
        logprobs.append(token_log_probs(logits, response_ids[rows], config.temperature))
        entropy.append(token_entropy(logits, response_mask[rows], config.temperature))
        values.append(row_values)
    return torch.cat(logprobs), (None if values[0] is None else torch.cat(values)), torch.cat(entropy)


@torch.no_grad()
def reference_logprobs_of(
    reference: ReferenceLogprobs, input_ids, attention_mask, response_ids, config: PolicyTuningConfig
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
    config: PolicyTuningConfig,
    processes: TrainingProcesses = TrainingProcesses(),
    columns: list[Mapping[str, Any]] | None = None,
    engine: VllmEngine | None = None,
) -> Rollout:
    """Sample one response per prompt and compute its rewards, advantages and returns.

    For GRPO and RLOO `prompts` holds each prompt `num_generations` times in a row (one group), and
    `columns` (one mapping per entry, the prompt rows' columns) reaches a reward function.

    The policy reads each prompt as `formatter` renders it (its chat template, or plain text); the
    score function receives the prompts themselves, so a reward model renders them its own way.

    With several training processes each collects its own share of the batch's prompts, and the
    advantages are whitened with the statistics of the whole batch.

    The reward-model score lands on the last response token: the EOS, or the last token allowed
    by `max_new_tokens` for a response cut there (which also pays `missing_eos_penalty`).

    With a vLLM `engine` the engine samples; the trainer's log-probs of the samples are then computed by
    a pass over them (as PPO's values are), and the two weigh each response's policy loss
    (importance_sampling.py). Where one optimizer step takes the whole rollout and the advantages do not
    read the log-probs (GRPO; RLOO without a KL in the reward) that pass is the update's own forward
    (`Rollout.settle_log_probs`).
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
            group_size=config.generations_per_prompt,
            record_log_probs=policy.value_head is None and engine is None,
            engine=engine,
        )
    generation_seconds = time.perf_counter() - started
    input_ids, attention_mask = batch.input_ids, batch.attention_mask
    response_ids, response_mask = batch.response_ids, batch.response_mask
    from_update = (batch.engine_log_probs is not None and config.one_update_per_rollout and config.grouped
                   and (config.algorithm == "grpo" or reference is None))
    importance_weights = engine_statistics = None
    if batch.log_probs is not None:  # GRPO/RLOO: the log-probs recorded while sampling, no second pass
        logprobs, values, entropy = batch.log_probs, None, batch.entropy
    elif from_update:  # filled in by the update's forward pass
        logprobs, values, entropy = torch.zeros_like(batch.engine_log_probs), None, torch.zeros_like(batch.engine_log_probs)
        importance_weights = torch.ones(len(response_ids), device=logprobs.device)
    else:  # PPO or vLLM: one pass for the log-probs, entropies and values (PPO) from the same logits
        logprobs, values, entropy = policy_logprobs_and_values(
            policy, input_ids, attention_mask, response_ids, response_mask, config
        )
    if batch.engine_log_probs is not None and not from_update:
        importance_weights, engine_statistics = engine_importance_weights(
            logprobs, batch.engine_log_probs, response_mask, config.importance_sampling_cap
        )
    ref_logprobs = None
    if reference is not None:
        ref_logprobs = reference_logprobs_of(reference, input_ids, attention_mask, response_ids, config)

    truncated = ~batch.ended
    if isinstance(score, RolloutRewards):
        completion_ids = [ids[row_mask.bool()].tolist() for ids, row_mask in zip(response_ids.cpu(), response_mask.cpu())]
        scores = score(prompts, batch.texts, completion_ids, columns)
    else:
        scores = score(prompts, batch.texts)
    scores = scores.to(logprobs.device, torch.float32)
    scores = scores - config.missing_eos_penalty * truncated.float()
    if config.grouped:
        advantages, kl = _group_advantages(scores, logprobs, ref_logprobs, response_mask, config, processes)
        returns = None
    else:
        if torch.isnan(scores).any():
            raise UserInputError(
                "the reward function returned None (no reward) for some responses: PPO needs a reward for every "
                "response; use algorithm grpo or rloo, which leave them out, or return a number"
            )
        rewards, kl = kl_shaped_rewards(scores, logprobs, ref_logprobs, response_mask, config.kl_coeff)
        advantages, returns = generalized_advantages(
            rewards, values, response_mask, config.gamma, config.gae_lambda
        )
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, response_mask, processes.total)
        values = values * response_mask
    return Rollout(
        input_ids=input_ids,
        attention_mask=attention_mask,
        response_ids=response_ids,
        response_mask=response_mask,
        logprobs=logprobs,
        values=values,
        advantages=advantages,
        returns=returns,
        scores=scores,
        kl=kl,
        entropy=entropy,
        truncated=truncated,
        texts=batch.texts,
        generation_seconds=generation_seconds,
        seconds=time.perf_counter() - started,
        ref_logprobs=ref_logprobs if config.grouped else None,  # GRPO's KL loss term reads them
        importance_weights=importance_weights,
        engine_statistics=engine_statistics,
        engine_log_probs=batch.engine_log_probs,
        log_probs_from_update=from_update,
    )


def _group_advantages(scores, logprobs, ref_logprobs, response_mask, config: PolicyTuningConfig, processes: TrainingProcesses):
    """GRPO's or RLOO's advantage of each response, on each of its real tokens, and the per-token KL.

    RLOO subtracts `kl_coeff` times the response's summed KL (logp - logp_ref) from its reward before the
    baseline, as TRL's RLOOTrainer; GRPO keeps the reward as it is (its KL is a loss term)."""
    mask = response_mask.to(logprobs.dtype)
    kl = response_kl(logprobs, ref_logprobs, response_mask)
    check_some_rewarded(scores, processes.total)
    if config.algorithm == "rloo":
        sequence = leave_one_out_advantages(scores - config.kl_coeff * kl.sum(dim=1), config.num_generations)
    else:
        sequence = group_advantages(scores, config.num_generations, config.scale_rewards, processes.total)
    return sequence[:, None] * mask, kl
