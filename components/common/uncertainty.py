"""Percentile-bootstrap intervals for the evaluation's figures.

Every headline figure is a mean over held-out items (prompts, or preference pairs for the reward
model), and 200 prompts leave a win rate of 0.6 anywhere between about 0.53 and 0.67. Resampling the
items with replacement shows how far a figure would move with another draw of items of the same
size; it says nothing about another training run (seed, data split), which can move it further.
"""

import torch

from components.common.metrics import Scores

BOOTSTRAP_RESAMPLES = 2000  # enough for stable 2.5% and 97.5% percentiles, and fast on a CPU
CONFIDENCE_LEVEL = 0.95

Interval = list[float]  # [low, high], a list so that it is written to JSON as one


def bootstrap_mean_intervals(
    per_item: list[Scores], seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = CONFIDENCE_LEVEL
) -> list[Interval]:
    """One interval per vector of per-item values, for the mean of that vector.

    All vectors are resampled with the same item indices, so that paired figures (base and tuned
    answers to the same prompt, their difference, the win share of each prompt) stay paired. The
    same seed gives the same intervals.
    """
    values = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in per_item])
    count = values.shape[1]
    if count == 0:
        raise ValueError("no values to resample")
    generator = torch.Generator().manual_seed(seed)
    means = torch.stack(
        [values[:, torch.randint(count, (count,), generator=generator)].mean(dim=1) for _ in range(resamples)]
    )
    return [_percentile_interval(column, level) for column in means.T]


def _percentile_interval(statistics: torch.Tensor, level: float = CONFIDENCE_LEVEL) -> Interval:
    """The central `level` share of the resampled statistics: its two tail percentiles."""
    tail = (1.0 - level) / 2.0
    low, high = torch.quantile(statistics, torch.tensor([tail, 1.0 - tail], dtype=statistics.dtype))
    return [low.item(), high.item()]
