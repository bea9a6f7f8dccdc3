"""Accuracy on verifiable tasks: the mean rule reward of each policy's responses to the held-out prompts.

With a `reward_function` (components/common/reward_functions.py), every response of the base and the
tuned policy, sampled at the evaluation's temperature and decoded greedily, is scored as TRL would score
it, with its prompt row's columns (`ground_truth`, ...). The accuracy of a policy is the mean of those
rewards (the share of right answers for a 0/1 reward). A prompt counts only when the function gave all
four of its responses a reward: a None (not applicable: a row without ground truth) leaves the prompt out
of every accuracy figure, so that base and tuned, greedy and sampled, are compared on the same prompts,
and `accuracy_rows_scored` says how many remained.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from components.common.reward_functions import RewardFunction, score_completions
from components.evaluate.eval_data import EvalPrompt
from components.common.metrics import mean
from components.evaluate.policy_samples import PolicySamples
from components.common.uncertainty import bootstrap_mean_intervals

# Figures with an interval, in the order they are resampled (all with the same prompt indices).
ACCURACY_FIGURES = (
    "base_accuracy", "tuned_accuracy", "tuned_minus_base_accuracy",
    "base_accuracy_greedy", "tuned_accuracy_greedy", "tuned_minus_base_accuracy_greedy",
)
ROWS_SCORED = "accuracy_rows_scored"
ACCURACY_KEYS = (*(key for figure in ACCURACY_FIGURES for key in (figure, f"{figure}_ci")), ROWS_SCORED)


@dataclass
class RuleRewards:
    """One policy's rule rewards, one per held-out prompt, NaN where the function said None."""

    sampled: list[float]
    greedy: list[float]


def rule_rewards(
    reward: RewardFunction, rows: Sequence[EvalPrompt], samples: PolicySamples, conversational: bool
) -> list[float]:
    """The function's reward of each response in `samples` (one per row), as TRL calls it."""
    return score_completions(
        reward, [row.prompt for row in rows], samples.texts, samples.completion_ids, [row.columns for row in rows],
        conversational=conversational,
    )


def scored_rows(base: RuleRewards, tuned: RuleRewards) -> list[int]:
    """Indices of the prompts whose four responses all have a reward."""
    vectors = (base.sampled, tuned.sampled, base.greedy, tuned.greedy)
    return [i for i in range(len(base.sampled)) if not any(math.isnan(v[i]) for v in vectors)]


def accuracy_figures(base: RuleRewards | None, tuned: RuleRewards | None, seed: int) -> dict:
    """Every accuracy key of evaluation.json's `policy` section: all None without rule rewards, and the
    figures and intervals None (with `accuracy_rows_scored` 0) when no prompt has all four rewards."""
    figures: dict = dict.fromkeys(ACCURACY_KEYS)
    if base is None or tuned is None:
        return figures
    keep = scored_rows(base, tuned)
    figures[ROWS_SCORED] = len(keep)
    if not keep:
        return figures

    def picked(values: list[float]) -> list[float]:
        return [values[i] for i in keep]

    per_prompt = {
        "base_accuracy": picked(base.sampled),
        "tuned_accuracy": picked(tuned.sampled),
        "base_accuracy_greedy": picked(base.greedy),
        "tuned_accuracy_greedy": picked(tuned.greedy),
    }
    for suffix in ("", "_greedy"):
        per_prompt[f"tuned_minus_base_accuracy{suffix}"] = [
            t - b for t, b in zip(per_prompt[f"tuned_accuracy{suffix}"], per_prompt[f"base_accuracy{suffix}"])
        ]
    vectors = [per_prompt[name] for name in ACCURACY_FIGURES]
    for name, values, interval in zip(ACCURACY_FIGURES, vectors, bootstrap_mean_intervals(vectors, seed)):
        figures[name], figures[f"{name}_ci"] = mean(values), interval
    return figures


def row_values(rewards: list[float] | None, count: int) -> list[float | None]:
    """Per-prompt rewards for the side-by-side table: None where there is none."""
    if rewards is None:
        return [None] * count
    return [None if math.isnan(value) else value for value in rewards]
