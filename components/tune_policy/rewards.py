"""The reward of each sampled response: the reward model's score, a reward function's, or their sum.

Which scores is decided by what the stage is given, nothing else:
- a reward model and no `reward_function`: the reward model alone (the pipeline's default);
- a `reward_function` and no reward model: the function alone;
- both: their sum, as TRL's GRPOTrainer sums its `reward_funcs` with weight 1. A response the function
  says None for (not applicable) then gets the reward model's score alone; only with the function alone
  is its reward NaN ("no reward", see group_math).

The function is called as TRL calls one (components/common/reward_functions.py): every completion of a
prompt with that prompt's row's columns, its token ids (up to and including the EOS when it ended),
and chat shapes when the policy reads its prompts through a chat template.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from components.common.data.transcripts import Prompt
from components.common.reward_functions import RewardFunction, RewardLogs, score_completions
from components.common.errors import UserInputError


class RolloutRewards:
    """Scores a rollout's responses with `model_score` (prompts, texts) -> tensor, `function`, or both."""

    def __init__(
        self,
        model_score: Callable[[Sequence[Prompt], Sequence[str]], torch.Tensor] | None,
        function: RewardFunction | None,
        conversational: bool = False,
    ):
        if model_score is None and function is None:
            raise UserInputError("policy tuning needs a reward: a reward model, a reward_function, or both")
        self.model_score = model_score
        self.function = function
        self.conversational = conversational
        self.logs = RewardLogs()
        self.trainer_state: Any = None

    def __call__(
        self,
        prompts: Sequence[Prompt],
        texts: Sequence[str],
        completion_ids: Sequence[Sequence[int]] | None = None,
        columns: Sequence[Mapping[str, Any]] | None = None,
    ) -> torch.Tensor:
        """One float32 reward per response on the CPU; NaN where there is none."""
        total = None
        if self.model_score is not None:
            total = self.model_score(prompts, texts).float().cpu()
        if self.function is not None:
            completion_ids = completion_ids if completion_ids is not None else [[] for _ in texts]
            columns = columns if columns is not None else [{} for _ in texts]
            values = score_completions(
                self.function, prompts, texts, completion_ids, columns, conversational=self.conversational,
                trainer_state=self.trainer_state, logs=self.logs,
            )
            rewards = torch.tensor(values, dtype=torch.float32)
            total = rewards if total is None else total + torch.nan_to_num(rewards, nan=0.0)
        return total

    def take_logged_metrics(self) -> dict[str, float]:
        """The means of what the function logged with `log_metric` since the last call, as `reward_function/NAME`."""
        metrics = {f"reward_function/{name}": sum(v) / len(v) for name, v in self.logs.metrics.items() if v}
        self.logs = RewardLogs()
        return metrics
