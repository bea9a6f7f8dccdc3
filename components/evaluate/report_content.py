"""What the evaluation reports say, independent of their format (HTML or Markdown)."""

import math
from dataclasses import dataclass, field

from components.evaluate.curves import Curve
from components.common.uncertainty import BOOTSTRAP_RESAMPLES, CONFIDENCE_LEVEL, Interval

# Thresholds of the automatic observations.
RM_ACCURACY_SUSPICIOUS = 0.95  # held-out accuracy above this: pairs trivially separable or leaked
RM_ACCURACY_WEAK = 0.55  # at or below this the reward model barely beats chance (0.5)
KL_LARGE_NATS = 10.0  # KL per response above this: the tuned policy moved far from the base
TRUNCATED_MANY = 0.5  # share of tuned responses cut at the length limit above which the report warns

NOT_COMPUTED = "n/a"
NO_REWARD_MODEL = "not measured (no reward model)"  # the reward-model figures of a run without one

READING_GUIDE: tuple[str, ...] = (
    "Reward-model accuracy is the share of held-out preference pairs that the reward model orders "
    "as the people did. 0.5 is chance; published reward models reach about 0.62 to 0.72; close to "
    "1.0 the pairs are probably trivially separable or leaked into training.",
    "Mean reward and win rate are measured with the same reward model the policy was optimised "
    "against: they show that the optimisation worked, not that the responses got better.",
    "KL to base (nats per response, on the tuned policy's own samples) measures how far the tuned "
    "policy moved away from the base model. A moderate KL with a higher reward is the goal.",
    f"Figures in brackets are {CONFIDENCE_LEVEL:.0%} intervals: the middle {CONFIDENCE_LEVEL:.0%} of the figure "
    f"over {BOOTSTRAP_RESAMPLES} resamplings, with replacement, of the held-out prompts (of the held-out pairs "
    "for the reward-model accuracy). They cover which prompts happened to be drawn, not another training run "
    "(seed or data split), which can move a figure further. A tuned-minus-base interval wholly above 0, or a win-rate "
    "interval wholly above 0.5, is a gain beyond that sampling noise.",
    "Gold scores, when the task has a gold scorer, grade the responses with the function the "
    "preferences came from. Reward up with gold up is a real improvement; reward up, KL blowing up "
    "and gold flat or down is reward hacking: the policy exploits the reward model's mistakes.",
    "Read the side-by-side samples: repetitive or fragmentary text, or the same answer to every "
    "prompt, with a high reward is the clearest sign of reward hacking.",
    "Implicit-reward accuracy is the share of held-out pairs whose chosen answer the tuned policy raised "
    "more, relative to the base, than the rejected one (DPO's implicit reward: about 0.5 when tuning moved "
    "the pairs at random). It needs no reward model, so DPO, KTO and RL runs compare on it.",
    "Training curves: the reward model's rank_loss should fall; the policy's reward should rise "
    "while its kl_loss stays bounded.",
)
ACCURACY_GUIDE = (
    "Accuracy, on a verifiable task, is the mean reward the reward function (a rule, not a learned model) "
    "gives the responses to the held-out prompts: the share of right answers for a 0/1 reward. It is "
    "measured on sampled responses (at the sampling temperature) and on greedy ones; prompts the function "
    "gives no reward (no ground truth) are left out of every accuracy figure, and their count is shown. "
    "Unlike the reward model's figures it cannot be gamed by the policy, unless the rule has loopholes."
)
NO_REWARD_MODEL_GUIDE = (
    "This run had no reward model (it was tuned with a reward function alone): the reward-model figures "
    "are not measured."
)


def format_number(value: float | int | None) -> str:
    """Integers as they are, other numbers with 4 significant digits, None as n/a."""
    if value is None:
        return NOT_COMPUTED
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def format_share(value: float) -> str:
    """A share as a percentage, with the fewest decimals that keep it honest: above 0 it never reads
    0%, below 1 never 100% (0.25 -> "25%", 0.005 -> "0.5%", 0.9996 -> "99.96%")."""
    for decimals in range(7):
        text = f"{value:.{decimals}%}"
        shown = float(text[:-1]) / 100
        if (shown == 0) == (value == 0) and (shown == 1) == (value == 1):
            break
    return text


def format_estimate(value: float | None, interval: Interval | None) -> str:
    """A figure with its interval, as in "0.81 [0.76, 0.86]"; the figure alone when it has none."""
    if interval is None:
        return format_number(value)
    low, high = interval
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]"


# The side-by-side tables show each prompt as the model tokenized it (chat template applied), as the
# predictions' inputs_pretokenized hold it.
PROMPT_COLUMN = "Prompt (as the policy read it)"


@dataclass(frozen=True)
class SideBySideRow:
    prompt: str  # the prompt as the tuned policy read it: rendered with its chat template when it has one
    base_response: str
    tuned_response: str
    base_reward: float | None  # None without a reward model
    tuned_reward: float | None
    base_gold: float | None = None
    tuned_gold: float | None = None
    base_rule_reward: float | None = None  # the reward function's reward; None without one or when it gave none
    tuned_rule_reward: float | None = None

    def preferred(self, by_reward_model: bool) -> str:
        """"tuned", "base" or "tie": which response scores higher, by the reward model or by the rule reward."""
        base, tuned = ((self.base_reward, self.tuned_reward) if by_reward_model
                       else (self.base_rule_reward, self.tuned_rule_reward))
        if base is None or tuned is None or base == tuned:
            return "tie"
        return "tuned" if tuned > base else "base"


@dataclass(frozen=True)
class CurvePlot:
    curve: Curve
    png: bytes
    filename: str  # the PNG's path relative to the predictions folder


@dataclass
class ReportContent:
    """Everything the reports show."""

    evaluation: dict  # the content of evaluation.json
    reward_margin: float | None  # None without a reward model
    base_mean_words: float
    tuned_mean_words: float
    rows: list[SideBySideRow]
    plots: list[CurvePlot]
    gold_scorer: str = ""
    settings: dict[str, str] = field(default_factory=dict)  # label -> value, shown as they are
    reward_function: str = ""  # the rule reward accuracy is measured with; "" = none
    sampling: str = ""  # how the sampled responses were drawn, as "temperature 0.7"

    @property
    def has_gold(self) -> bool:
        return self.evaluation["policy"]["tuned_gold_score"] is not None

    @property
    def has_reward_model(self) -> bool:
        return self.evaluation["policy"]["tuned_mean_reward"] is not None

    @property
    def has_accuracy(self) -> bool:
        return bool(self.reward_function)

    def _rm(self, section: dict, name: str) -> str:
        """A reward-model figure with its interval, or why there is none."""
        return section_estimate(section, name, NOT_COMPUTED if self.has_reward_model else NO_REWARD_MODEL)

    def reading_guide(self) -> list[str]:
        guide = list(READING_GUIDE)
        if self.has_accuracy:
            guide.insert(3, ACCURACY_GUIDE)
        if not self.has_reward_model:
            guide.insert(0, NO_REWARD_MODEL_GUIDE)
        return guide

    def _accuracy_comparison(self) -> list[tuple[str, str, str]]:
        policy = self.evaluation["policy"]
        sampled = f"sampled, {self.sampling}" if self.sampling else "sampled"
        return [
            (f"Accuracy ({self.reward_function}, {sampled})", section_estimate(policy, "base_accuracy"),
             section_estimate(policy, "tuned_accuracy")),
            (f"Accuracy ({self.reward_function}, greedy)", section_estimate(policy, "base_accuracy_greedy"),
             section_estimate(policy, "tuned_accuracy_greedy")),
        ]

    def _accuracy_singles(self) -> list[tuple[str, str]]:
        policy = self.evaluation["policy"]
        return [
            ("Accuracy, tuned minus base (sampled, same prompts)",
             section_estimate(policy, "tuned_minus_base_accuracy")),
            ("Accuracy, tuned minus base (greedy, same prompts)",
             section_estimate(policy, "tuned_minus_base_accuracy_greedy")),
            ("Held-out prompts scored by the reward function (the others have no reward: no ground truth)",
             f"{format_number(policy.get('accuracy_rows_scored'))} of {format_number(policy['eval_prompts'])}"),
        ]

    def policy_comparison(self) -> list[tuple[str, str, str]]:
        """(metric, base, tuned) rows of the headline table."""
        policy = self.evaluation["policy"]
        gold_label = (f"Mean gold score ({self.gold_scorer})" if self.gold_scorer
                      else "Mean gold score (no gold scorer named)")
        accuracy = self._accuracy_comparison() if self.has_accuracy else []
        return [
            *accuracy,
            ("Mean reward (reward model)", self._rm(policy, "base_mean_reward"), self._rm(policy, "tuned_mean_reward")),
            (gold_label, section_estimate(policy, "base_gold_score"), section_estimate(policy, "tuned_gold_score")),
            ("Mean response length (tokens)", format_number(policy["base_mean_response_tokens"]),
             format_number(policy["tuned_mean_response_tokens"])),
            ("Mean response length (words)", format_number(self.base_mean_words),
             format_number(self.tuned_mean_words)),
            ("Share of responses cut at the length limit (no end token)",
             format_number(policy["base_truncated_fraction"]), format_number(policy["tuned_truncated_fraction"])),
        ]

    def _implicit_reward_singles(self) -> list[tuple[str, str]]:
        policy = self.evaluation["policy"]
        if not policy.get("implicit_reward_pairs"):
            return []
        pairs = format_number(policy["implicit_reward_pairs"])
        return [
            (f"Implicit-reward accuracy of tuned vs base ({pairs} held-out pairs)",
             section_estimate(policy, "implicit_reward_accuracy")),
            ("Implicit-reward margin, nats (log-ratio to base, chosen minus rejected)",
             section_estimate(policy, "implicit_reward_margin")),
        ]

    def single_metrics(self) -> list[tuple[str, str]]:
        """(metric, value) rows of the headline table."""
        reward_model, policy = self.evaluation["reward_model"], self.evaluation["policy"]
        pairs = reward_model["eval_pairs"]
        accuracy = self._accuracy_singles() if self.has_accuracy else []
        return [
            *accuracy,
            (f"Reward-model pairwise accuracy ({pairs} held-out pairs)" if pairs is not None
             else "Reward-model pairwise accuracy (held-out pairs)", self._rm(reward_model, "eval_accuracy")),
            ("Reward-model mean margin r(chosen) - r(rejected)",
             format_number(self.reward_margin) if self.has_reward_model else NO_REWARD_MODEL),
            ("Win rate of tuned over base (reward model, ties count half)", self._rm(policy, "win_rate")),
            ("Mean reward, tuned minus base (same prompts)", self._rm(policy, "tuned_minus_base_reward")),
            ("Mean gold score, tuned minus base (same prompts)", section_estimate(policy, "tuned_minus_base_gold_score")),
            *self._implicit_reward_singles(),
            ("KL(tuned || base), nats per response", format_number(policy["kl_to_base"])),
            ("Held-out prompts answered by each policy", format_number(policy["eval_prompts"])),
        ]

    def observations(self) -> list[str]:
        """Warnings drawn from the numbers themselves."""
        accuracy = self.evaluation["reward_model"]["eval_accuracy"]
        policy = self.evaluation["policy"]
        tuning_warning = self.evaluation.get("tuning", {}).get("warning")
        notes = [f"No learning: {tuning_warning}."] if tuning_warning else []
        if accuracy is None:
            pass
        elif accuracy > RM_ACCURACY_SUSPICIOUS:
            notes.append(
                f"Reward-model accuracy {accuracy:.3f} is above {RM_ACCURACY_SUSPICIOUS}: the held-out "
                "pairs may be trivially separable or overlap the training pairs."
            )
        elif accuracy <= RM_ACCURACY_WEAK:
            notes.append(
                f"Reward-model accuracy {accuracy:.3f} is close to chance (0.5): the policy was "
                "optimised against a mostly uninformative reward."
            )
        if policy["tuned_truncated_fraction"] > TRUNCATED_MANY:
            notes.append(
                f"{format_share(policy['tuned_truncated_fraction'])} of the tuned responses were cut at the length limit "
                "before their end token: raise target_sequence_length, set missing_eos_penalty, or check that "
                "an instruct model reads its chat template (use_chat_template)."
            )
        if policy["kl_to_base"] > KL_LARGE_NATS:
            notes.append(
                f"KL to base is {policy['kl_to_base']:.3g} nats per response (above {KL_LARGE_NATS:g}): "
                "the tuned policy moved far from the base model; check the samples for degenerate text."
            )
        if self.has_reward_model:
            reward_up = policy["tuned_mean_reward"] > policy["base_mean_reward"]
            if self.has_gold and reward_up and policy["tuned_gold_score"] <= policy["base_gold_score"]:
                notes.append(
                    "The reward rose but the gold score did not: the tuned policy is likely exploiting the "
                    "reward model (reward hacking)."
                )
            if not reward_up:
                notes.append("The tuned policy does not score above the base model on the reward model.")
        if self.has_accuracy and policy.get("accuracy_rows_scored") == 0:
            notes.append(
                f"The reward function {self.reward_function} gave no reward to any held-out prompt's responses "
                "(no ground truth?): accuracy was not measured."
            )
        return notes

    def side_by_side_note(self) -> str:
        """What the green marking of the side-by-side table means."""
        if self.has_reward_model:
            return "Green marks the response the reward model prefers."
        if self.has_accuracy:
            return "Green marks the response the reward function rewards more."
        return "No reward model or reward function scored the responses."


def section_estimate(section: dict, name: str, missing: str = NOT_COMPUTED) -> str:
    """A figure of an evaluation.json section with the interval stored next to it as `<name>_ci`;
    `missing` when the figure is None or absent (as `NO_REWARD_MODEL` for the reward-model figures)."""
    if section.get(name) is None:
        return missing
    return format_estimate(section[name], section.get(f"{name}_ci"))


def reward_model_estimate(section: dict, name: str) -> str:
    """A reward-model figure of summary.json / evaluation.json, or "not measured (no reward model)"."""
    return section_estimate(section, name, NO_REWARD_MODEL)
