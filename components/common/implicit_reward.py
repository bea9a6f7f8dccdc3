"""DPO's implicit reward on held-out pairs: how far the tuned policy moved toward the chosen answers.

A policy tuned with DPO or KTO defines the reward r(x, y) = beta x (log pi(y|x) - log ref(y|x)), its
reference being the base policy. The held-out pairs are ordered correctly when the margin
(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)) is above 0. The margin here is in
nats, without beta (TRL's `rewards/margins` is beta times it). Equal policies give every pair a margin
of 0, so an untuned policy orders no pair correctly.

Both policies read each answer as the tuned one was trained on it (components/common/
sequences.py): the prompt as generation encodes it, the answer after it, then EOS. The tuned policy
keeps its base's tokenizer, so both score the same tokens.
"""

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from components.common import defaults
from components.common.chat_templates import PromptFormatter
from components.common.generation import GeneratedBatch, encode_prompts
from components.common.log_probs import response_log_probs
from components.common.models import Placement, free_accelerator_memory, load_causal_lm
from components.common.canonical_data import CanonicalPair
from components.common.metrics import correct_orderings, mean_margin, pairwise_accuracy, summed_log_ratios
from components.common.uncertainty import bootstrap_mean_intervals
from components.common.sequences import answer_ids

SIDES = ("chosen", "rejected")
# The figures implicit_reward_accuracy returns, under these names in evaluation.json's policy section.
IMPLICIT_REWARD_KEYS = (
    "implicit_reward_accuracy",
    "implicit_reward_accuracy_ci",
    "implicit_reward_margin",
    "implicit_reward_margin_ci",
    "implicit_reward_pairs",
)


def answer_batches(
    formatter: PromptFormatter,
    pairs: Sequence[CanonicalPair],
    side: str,
    max_prompt_tokens: int,
    max_response_tokens: int,
    batch_size: int,
) -> list[GeneratedBatch]:
    """The pairs' prompts (left-padded, as generation pads them) with their `side` answer after them."""
    tokenizer = formatter.tokenizer
    batches = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        prompt_ids, prompt_mask = encode_prompts(
            tokenizer, formatter.prompts([pair.prompt for pair in chunk]), max_prompt_tokens, torch.device("cpu")
        )
        answers = [getattr(pair, side) for pair in chunk]
        ids = [torch.tensor(row) for row in answer_ids(formatter, answers, max_response_tokens)]
        response_ids = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=tokenizer.pad_token_id)
        response_mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(row) for row in ids], batch_first=True)
        batches.append(
            GeneratedBatch(
                prompt_ids, prompt_mask, response_ids, response_mask, answers,
                ended=torch.ones(len(chunk), dtype=torch.bool), eos_token_ids=(tokenizer.eos_token_id,),
            )
        )
    return batches


def answer_log_probs(model, batches: dict[str, list[GeneratedBatch]], name: str) -> dict[str, list[torch.Tensor]]:
    """Per side, the model's (B, R) log-probabilities of every answer token, 0 after the answer; the progress
    bar names the model (`name`) and the side."""
    return {side: [response_log_probs(model, batch, temperature=0.0)
                   for batch in tqdm(side_batches, desc=f"implicit reward: {name} policy, {side} answers", unit="batch")]
            for side, side_batches in batches.items()}


def implicit_reward_accuracy(
    policy_source: str,
    reference_source: str,
    pairs: Sequence[CanonicalPair],
    placement: Placement,
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE,
    max_prompt_tokens: int = defaults.PROMPT_SEQUENCE_LENGTH,
    max_response_tokens: int = defaults.TARGET_SEQUENCE_LENGTH,
    batch_size: int = 16,
    seed: int = 0,
) -> dict:
    """The share of `pairs` whose implicit-reward margin is above 0, the mean margin, each with its 95%
    bootstrap interval over the pairs, and the number of pairs scored (figures NaN without pairs).

    `policy_source` is the tuned policy, `reference_source` its base; they are loaded one after the other.
    """
    if not pairs:
        return {"implicit_reward_accuracy": math.nan, "implicit_reward_accuracy_ci": [math.nan, math.nan],
                "implicit_reward_margin": math.nan, "implicit_reward_margin_ci": [math.nan, math.nan],
                "implicit_reward_pairs": 0}
    model, formatter = load_causal_lm(policy_source, placement, use_chat_template)
    batches = {side: answer_batches(formatter, pairs, side, max_prompt_tokens, max_response_tokens, batch_size)
               for side in SIDES}
    tuned = answer_log_probs(model, batches, "tuned")
    del model
    free_accelerator_memory()
    model, _ = load_causal_lm(reference_source, placement, use_chat_template)
    reference = answer_log_probs(model, batches, "base")
    del model
    free_accelerator_memory()

    log_ratios = {
        side: torch.cat([
            summed_log_ratios(t, r, batch.response_mask)
            for t, r, batch in zip(tuned[side], reference[side], batches[side], strict=True)
        ])
        for side in SIDES
    }
    chosen, rejected = log_ratios["chosen"], log_ratios["rejected"]
    accuracy_ci, margin_ci = bootstrap_mean_intervals([correct_orderings(chosen, rejected), chosen - rejected], seed)
    return {
        "implicit_reward_accuracy": pairwise_accuracy(chosen, rejected),
        "implicit_reward_accuracy_ci": accuracy_ci,
        "implicit_reward_margin": mean_margin(chosen, rejected),
        "implicit_reward_margin_ci": margin_ci,
        "implicit_reward_pairs": len(pairs),
    }
