"""The tuning algorithms, and which stages a run with given settings needs.

Online RL samples from the policy and scores the samples with the reward model, a rule (the
`reward_function`) or both. Offline preference tuning (DPO, KTO) learns from the pairs directly and
needs a reward model only to judge the result (`train_reward_model_for_eval`).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from components.common.errors import UserInputError

ONLINE_ALGORITHMS = ("ppo", "grpo", "rloo")
OFFLINE_ALGORITHMS = ("dpo", "kto")
ALGORITHMS = ONLINE_ALGORITHMS + OFFLINE_ALGORITHMS

# The values of StagePlan's fields as the DAG's conditions compare them (pipeline/dag.py).
ONLINE = "online"
OFFLINE = "offline"
TRAIN = "train"
SKIP = "skip"


@dataclass(frozen=True)
class StagePlan:
    reward_model: str  # TRAIN or SKIP
    policy_tuning: str  # ONLINE or OFFLINE


def plan_stages(
    algorithm: str, reward_function: str, preference_dataset: str, train_reward_model_for_eval: bool
) -> StagePlan:
    """The stages a run needs, or a UserInputError naming the settings that leave nothing to learn from."""
    has_pairs = bool(preference_dataset.strip())
    if algorithm in ONLINE_ALGORITHMS:
        if not has_pairs and not reward_function.strip():
            raise UserInputError(
                f"algorithm {algorithm!r} needs a reward: give preference_dataset (to train a reward "
                "model) or reward_function (a rule), or both"
            )
        return StagePlan(TRAIN if has_pairs else SKIP, ONLINE)
    if algorithm in OFFLINE_ALGORITHMS:
        if not has_pairs:
            raise UserInputError(f"algorithm {algorithm!r} learns from preference pairs: preference_dataset is empty")
        return StagePlan(TRAIN if train_reward_model_for_eval else SKIP, OFFLINE)
    raise UserInputError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")


# The pipeline parameters that decide the stages: plan_stages's arguments, by name.
PLAN_INPUTS = ("algorithm", "reward_function", "preference_dataset", "train_reward_model_for_eval")


def plan_stages_from(values: Mapping) -> StagePlan:
    """`plan_stages` on the PLAN_INPUTS of a mapping of parameter values."""
    return plan_stages(*(values[name] for name in PLAN_INPUTS))
