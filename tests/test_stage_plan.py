"""Which stages a run's settings need (components/common/algorithms.py): the DAG branches on this."""

import pytest

from components.common.algorithms import OFFLINE, ONLINE, SKIP, TRAIN, StagePlan, plan_stages
from components.common.errors import UserInputError

PAIRS = "gs://bucket/pairs.jsonl"


@pytest.mark.parametrize(
    "algorithm, reward_function, preference_dataset, for_eval, expected",
    [
        ("ppo", "", PAIRS, False, StagePlan(TRAIN, ONLINE)),  # the reward model is the reward
        ("grpo", "boxed-answer", PAIRS, False, StagePlan(TRAIN, ONLINE)),  # both: their sum
        ("grpo", "boxed-answer", "", True, StagePlan(SKIP, ONLINE)),  # the rule alone
        ("rloo", "my_rewards.py:score", " ", True, StagePlan(SKIP, ONLINE)),
        ("dpo", "", PAIRS, True, StagePlan(TRAIN, OFFLINE)),  # a reward model only to judge
        ("kto", "", PAIRS, False, StagePlan(SKIP, OFFLINE)),
    ],
)
def test_the_plan_follows_the_algorithm_and_the_rewards(algorithm, reward_function, preference_dataset, for_eval,
                                                        expected):
    assert plan_stages(algorithm, reward_function, preference_dataset, for_eval) == expected


@pytest.mark.parametrize(
    "algorithm, reward_function, preference_dataset, message",
    [
        ("ppo", "", "", "needs a reward: give preference_dataset (to train a reward model) or reward_function"),
        ("dpo", "boxed-answer", "", "learns from preference pairs: preference_dataset is empty"),
        ("sft", "", PAIRS, "algorithm must be one of ppo, grpo, rloo, dpo, kto, got 'sft'"),
    ],
)
def test_settings_that_leave_nothing_to_learn_from_are_refused(algorithm, reward_function, preference_dataset,
                                                               message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_stages(algorithm, reward_function, preference_dataset, True)
