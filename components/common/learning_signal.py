"""Whether tuning had anything to learn from, as the policy stage and the evaluation both say it.

GRPO and RLOO learn only from groups whose responses got different rewards: when every group's rewards
are equal, every advantage is 0 and the update leaves the policy where it was (apart from the KL term).
Each step logs the share of such groups (`groups_with_equal_rewards`, TRL's `frac_reward_zero_std`), of
zero rewards and of responses cut at the length limit; `missing_learning_signal` turns a run's steps into
the warning the policy stage prints and the evaluation report repeats.
"""

GROUP_STATISTICS = ("groups_with_equal_rewards", "zero_reward_fraction", "truncated_fraction")  # logged each step


def missing_learning_signal(history: list[dict[str, float]], num_generations: int) -> str | None:
    """A warning when no step of a GRPO/RLOO run had a group with different rewards: then every advantage
    was 0 and the policy learned nothing from its rewards. None when some step had a signal."""
    if not history or any(step["groups_with_equal_rewards"] < 1.0 for step in history):
        return None

    def mean_of(name: str) -> float:
        return sum(step[name] for step in history) / len(history)

    return (
        f"no learning signal in any of the {len(history)} steps: the {num_generations} responses of every group "
        f"got the same reward, so every advantage was 0 and the policy learned nothing from its rewards; "
        f"{mean_of('zero_reward_fraction'):.1%} of rewards were 0 and {mean_of('truncated_fraction'):.1%} of "
        "responses were cut at target_sequence_length. Likely causes: a reward the model never earns (a format "
        "it does not write, such as \\boxed{}, or a task too hard for it: try an easier slice, or a "
        "system_prompt or instruction that asks for the format), or answers cut before they end (raise "
        "target_sequence_length); the stage log shows sampled responses"
    )
