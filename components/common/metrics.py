"""The numbers of the evaluation, as pure functions of scores, log-probabilities and masks."""

from collections.abc import Sequence

import torch

Scores = torch.Tensor | Sequence[float]


def _paired(first: Scores, second: Scores) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(first, dtype=torch.float64)
    b = torch.as_tensor(second, dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"expected two score vectors of the same length, got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.numel() == 0:
        raise ValueError("no scores to compare")
    return a, b


def correct_orderings(chosen_rewards: Scores, rejected_rewards: Scores) -> torch.Tensor:
    """Per pair, 1.0 where the reward model scores the chosen answer strictly above the rejected one, else 0.0."""
    chosen, rejected = _paired(chosen_rewards, rejected_rewards)
    return (chosen > rejected).double()


def pairwise_accuracy(chosen_rewards: Scores, rejected_rewards: Scores) -> float:
    """Share of pairs where the reward model scores the chosen answer strictly above the rejected one."""
    return correct_orderings(chosen_rewards, rejected_rewards).mean().item()


def mean_margin(chosen_rewards: Scores, rejected_rewards: Scores) -> float:
    """Mean of r(chosen) - r(rejected)."""
    chosen, rejected = _paired(chosen_rewards, rejected_rewards)
    return (chosen - rejected).mean().item()


def win_shares(tuned_rewards: Scores, base_rewards: Scores) -> torch.Tensor:
    """Per prompt, 1.0 where the tuned response scores above the base one, 0.5 on a tie, else 0.0."""
    tuned, base = _paired(tuned_rewards, base_rewards)
    return (tuned > base).double() + 0.5 * (tuned == base).double()


def win_rate(tuned_rewards: Scores, base_rewards: Scores) -> float:
    """Share of prompts where the tuned response scores above the base one; a tie counts half."""
    return win_shares(tuned_rewards, base_rewards).mean().item()


def summed_log_ratios(
    tuned_log_probs: torch.Tensor, base_log_probs: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """Per sequence, the sum over response tokens of log p_tuned - log p_base.

    On samples from the tuned policy its mean over sequences estimates KL(tuned || base). Positions
    where `response_mask` is 0 (after the first EOS) do not count, whatever values they hold.
    """
    if not tuned_log_probs.shape == base_log_probs.shape == response_mask.shape:
        raise ValueError(
            f"shapes differ: tuned {tuple(tuned_log_probs.shape)}, base {tuple(base_log_probs.shape)}, "
            f"mask {tuple(response_mask.shape)}"
        )
    difference = (tuned_log_probs.double() - base_log_probs.double()).masked_fill(response_mask == 0, 0.0)
    return difference.sum(dim=1)


def word_count(text: str) -> int:
    """Whitespace-separated words of a text."""
    return len(text.split())


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean of a non-empty sequence, as a plain float."""
    if not values:
        raise ValueError("mean of no values")
    return float(sum(values) / len(values))
