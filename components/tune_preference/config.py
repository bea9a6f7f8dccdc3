"""Settings of the preference-tuning stage (DPO or KTO), with their defaults."""

from dataclasses import dataclass

from components.common import defaults
from components.common.sharding import sharding_problems
from components.common.stage_settings import from_parameter
from components.common.steps import DEFAULT_BATCH_SIZE, gradient_accumulation_steps, micro_batch_size

# TRL 1.16's DPO losses (DPOConfig.loss_type; TRL keeps no importable list of them). 'exo_pair' is
# left out: it needs a label smoothing above 0, which this stage does not set.
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
KTO_LOSS_TYPE = "kto"  # TRL's KTO loss (eq. 7 of the KTO paper); `loss_type` is DPO's only


@dataclass
class PreferenceTuningConfig:
    """How the policy is tuned on preference pairs with TRL's DPOTrainer or KTOTrainer.

    One step is one optimizer step over `batch_size` pairs. DPO reads each pair as it is; KTO reads
    the pairs as rows of their own (a desirable and an undesirable one; see kto_rows.py), so a KTO
    step takes 2 x `batch_size` rows. Forward passes take at most `max_micro_batch_size` pairs (KTO:
    twice as many rows); gradient accumulation makes up the rest of the step.
    """

    steps: int = from_parameter("preference_tuning_train_steps")
    algorithm: str = "dpo"  # "dpo" or "kto"
    batch_size: int = DEFAULT_BATCH_SIZE  # pairs per optimizer step (Vertex: 64)
    max_micro_batch_size: int = 16  # pairs per forward pass
    base_learning_rate: float = defaults.POLICY_BASE_LEARNING_RATE
    learning_rate_multiplier: float = from_parameter("reinforcement_learning_rate_multiplier", 1.0)
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    beta: float = from_parameter("dpo_beta", defaults.DPO_BETA)  # strength of the implicit KL to the reference (TRL's beta, both losses)
    # DPO's loss, TRL's name, or several joined by commas and summed ("sigmoid,sft": DPO plus the chosen
    # answers' NLL, as RPO); KTO always uses KTO_LOSS_TYPE
    loss_type: str = from_parameter("dpo_loss_type", defaults.DPO_LOSS_TYPE)
    desirable_weight: float = from_parameter("kto_desirable_weight", defaults.KTO_DESIRABLE_WEIGHT)  # KTO: weight of the desirable rows' loss
    undesirable_weight: float = from_parameter("kto_undesirable_weight", defaults.KTO_UNDESIRABLE_WEIGHT)  # KTO: weight of the undesirable rows' loss
    lora_rank: int = from_parameter("policy_lora_rank", defaults.POLICY_LORA_RANK)  # 0 trains every weight
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE  # "auto", "true" or "false"
    max_prompt_tokens: int = from_parameter("prompt_sequence_length", defaults.PROMPT_SEQUENCE_LENGTH)
    max_response_tokens: int = from_parameter("target_sequence_length", defaults.TARGET_SEQUENCE_LENGTH)
    sharding: str = defaults.SHARDING  # "auto", "none" or "fsdp" (components/common/trainer/sharding.py)
    seed: int = 0
    logging_steps: int = 5
    eval_batch_size: int = 16  # pairs per forward pass of the implicit-reward evaluation

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier

    @property
    def loss_types(self) -> list[str]:
        """The DPO losses TRL sums, in `loss_type`'s order."""
        return [name.strip() for name in self.loss_type.split(",")]

    @property
    def rows_per_pair(self) -> int:
        """Training examples each pair makes: DPO's pair, or KTO's two rows."""
        return 2 if self.algorithm == "kto" else 1

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.rows_per_pair

    def micro_batch_size(self, processes: int = 1) -> int:
        """Examples (DPO: pairs, KTO: rows) per forward pass in each of `processes`."""
        return micro_batch_size(self.examples_per_step, self.max_micro_batch_size * self.rows_per_pair, processes)

    def gradient_accumulation_steps(self, processes: int = 1) -> int:
        """Forward passes per optimizer step in each process, so that every step sees batch_size pairs."""
        return gradient_accumulation_steps(
            self.examples_per_step, self.max_micro_batch_size * self.rows_per_pair, processes
        )

    def validate(self, processes: int = 1) -> None:
        """Raise UserInputError naming every setting no DPO or KTO run can use on `processes` GPUs."""
        from components.common.algorithms import OFFLINE_ALGORITHMS
        from components.common.chat_templates import USE_CHAT_TEMPLATE_VALUES
        from components.common.distributed import unshareable_sizes
        from components.common.errors import UserInputError

        positive_ints = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "max_micro_batch_size": self.max_micro_batch_size,
            "max_prompt_tokens (prompt_sequence_length)": self.max_prompt_tokens,
            "max_response_tokens (target_sequence_length)": self.max_response_tokens,
            "logging_steps": self.logging_steps,
            "eval_batch_size": self.eval_batch_size,
        }
        problems = [f"{name} must be >= 1, got {value}" for name, value in positive_ints.items() if value < 1]
        if self.algorithm not in OFFLINE_ALGORITHMS:
            problems.append(f"algorithm must be one of {', '.join(OFFLINE_ALGORITHMS)}, got {self.algorithm!r}")
        if self.batch_size >= 1:
            problems += unshareable_sizes({"batch_size": self.batch_size}, processes)
        problems += sharding_problems(self.sharding)
        if self.learning_rate <= 0:
            problems.append(
                f"the learning rate must be > 0, got {self.base_learning_rate} x multiplier "
                f"{self.learning_rate_multiplier} (learning_rate_multiplier)"
            )
        if self.beta <= 0:
            problems.append(f"beta (dpo_beta) must be > 0, got {self.beta}")
        unknown = [name for name in self.loss_types if name not in DPO_LOSS_TYPES]
        if unknown:
            problems.append(
                f"loss_type (dpo_loss_type) must be one of {', '.join(DPO_LOSS_TYPES)}, or several of them joined "
                f"by commas; got {self.loss_type!r}"
            )
        if self.desirable_weight <= 0 or self.undesirable_weight <= 0:
            problems.append(
                "desirable_weight and undesirable_weight (kto_desirable_weight, kto_undesirable_weight) must be > 0, "
                f"got {self.desirable_weight} and {self.undesirable_weight}"
            )
        if self.lora_rank < 0:
            problems.append(f"lora_rank (policy_lora_rank) must be >= 0, got {self.lora_rank}")
        if self.use_chat_template not in USE_CHAT_TEMPLATE_VALUES:
            problems.append(
                f"use_chat_template must be one of {', '.join(USE_CHAT_TEMPLATE_VALUES)}, got {self.use_chat_template!r}"
            )
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if problems:
            raise UserInputError("preference-tuning (DPO/KTO) settings: " + "; ".join(problems))
