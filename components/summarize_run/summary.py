"""The run summary: the figures and paths a person or a script reads first."""

import json
from pathlib import Path
from typing import Any

from components.common import defaults
from components.common.algorithms import ONLINE_ALGORITHMS


def build_summary(
    evaluation: dict[str, Any],
    reward_model_train_steps: int,
    reinforcement_learning_train_steps: int,
    reward_model_uri: str | None,
    policy_uri: str,
    report_html_uri: str,
    algorithm: str = defaults.ALGORITHM,
    preference_tuning_train_steps: int = 0,
) -> dict[str, Any]:
    """Merge the evaluation results with the algorithm, the step counts and where the outputs live.

    Every figure of evaluation.json is kept under its name: with no reward model its figures (and
    `paths.reward_model`) are null; without a reward function the accuracy figures are. A stage that
    did not run (the reward model, RL for DPO/KTO, DPO/KTO for RL) counts 0 steps.
    """
    online = algorithm in ONLINE_ALGORITHMS
    return {
        "algorithm": algorithm,
        "reward_model": dict(evaluation["reward_model"]),
        "policy": dict(evaluation["policy"]),
        "tuning": dict(evaluation.get("tuning") or {}),
        "steps": {
            "reward_model_train_steps": int(reward_model_train_steps) if reward_model_uri else 0,
            "reinforcement_learning_train_steps": int(reinforcement_learning_train_steps) if online else 0,
            "preference_tuning_train_steps": 0 if online else int(preference_tuning_train_steps),
        },
        "paths": {"reward_model": reward_model_uri, "policy": policy_uri, "report_html": report_html_uri},
    }


def write_summary(summary: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return path
