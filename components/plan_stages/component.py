"""KFP wrapper of the planning step: which of the optional stages this run's settings need."""

from typing import NamedTuple


def plan_stages(
    algorithm: str,
    reward_function: str,
    preference_dataset: str,
    train_reward_model_for_eval: bool,
    code_version: str,
) -> NamedTuple("Outputs", [("reward_model", str), ("policy_tuning", str)]):
    """Decide the DAG's branches (components/common/algorithms.py): reward_model is "train" or "skip",
    policy_tuning "online" (PPO, GRPO, RLOO) or "offline" (DPO, KTO)."""
    from collections import namedtuple

    from components.common.algorithms import plan_stages as plan

    stages = plan(algorithm, reward_function, preference_dataset, train_reward_model_for_eval)
    return namedtuple("Outputs", ["reward_model", "policy_tuning"])(stages.reward_model, stages.policy_tuning)
