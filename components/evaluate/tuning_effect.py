"""Whether tuning changed the policy at all, for the report to say so rather than show noise as a result.

Two checks: the policy stage's own logs (GRPO/RLOO log, every step, the share of groups whose rewards
were all equal: a run in which every step had only such groups learned nothing from its rewards), and
the weights themselves (a tuned policy whose weights equal the base model's, bit for bit, is the base
model, whatever the algorithm).
"""

import hashlib
from dataclasses import dataclass

import torch

from components.common.learning_signal import GROUP_STATISTICS, missing_learning_signal
from components.evaluate.curves import Curve

UNCHANGED_WEIGHTS = (
    "the tuned policy's weights equal the base model's, bit for bit: tuning changed nothing, so every difference "
    "between their figures is sampling noise. Likely causes: no learning signal (a reward the model never earns, "
    "or answers cut at target_sequence_length), or no optimizer step that moved the weights (0 training steps, "
    "a learning rate of 0)"
)


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer, by name: equal digests mean equal weights."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def logged_group_statistics(policy_curves: list[Curve]) -> list[dict[str, float]]:
    """The policy stage's per-step group statistics, from the curves of its TensorBoard logs; [] when it
    logged none (PPO, DPO, KTO, or no logs)."""
    curves = {curve.tag: curve for curve in policy_curves if curve.tag in GROUP_STATISTICS}
    if set(curves) != set(GROUP_STATISTICS):
        return []
    steps = len(curves[GROUP_STATISTICS[0]].values)
    return [{tag: curve.values[step] for tag, curve in curves.items()} for step in range(steps)]


@dataclass(frozen=True)
class TuningEffect:
    """What the evaluation.json section `tuning` holds."""

    policy_steps_logged: int | None  # GRPO/RLOO steps whose group statistics the logs hold; None: none logged
    steps_with_learning_signal: int | None
    tuned_equals_base: bool
    warning: str | None  # why the tuned policy is (likely) the base model; None when nothing says so

    def to_json(self) -> dict:
        return {"policy_steps_logged": self.policy_steps_logged,
                "steps_with_learning_signal": self.steps_with_learning_signal,
                "tuned_equals_base": self.tuned_equals_base, "warning": self.warning}


def tuning_effect(policy_curves: list[Curve], num_generations: int, tuned_equals_base: bool) -> TuningEffect:
    history = logged_group_statistics(policy_curves)
    warnings = [UNCHANGED_WEIGHTS] if tuned_equals_base else []
    if silent := missing_learning_signal(history, num_generations):
        warnings.append(silent)
    return TuningEffect(
        len(history) if history else None,
        sum(step["groups_with_equal_rewards"] < 1.0 for step in history) if history else None,
        tuned_equals_base,
        "; ".join(warnings) or None,
    )
