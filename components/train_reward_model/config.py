"""Settings of the reward-model stage, with their defaults."""

from dataclasses import dataclass

from components.common import defaults
from components.common.sharding import sharding_problems
from components.common.stage_settings import from_parameter
from components.common.steps import DEFAULT_BATCH_SIZE, gradient_accumulation_steps, micro_batch_size


@dataclass
class RewardTrainingConfig:
    steps: int = from_parameter("reward_model_train_steps")
    batch_size: int = DEFAULT_BATCH_SIZE  # pairs per optimizer step (Vertex: 64)
    max_micro_batch_size: int = 16  # pairs per forward pass; gradient accumulation makes up the rest
    base_learning_rate: float = 1e-4
    learning_rate_multiplier: float = from_parameter("reward_model_learning_rate_multiplier", 1.0)
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lora_rank: int = from_parameter("reward_model_lora_rank", defaults.REWARD_MODEL_LORA_RANK)  # 0 trains every weight
    use_margin: bool = False  # pass the pairs' "margin" to the loss: -log sigmoid(r_w - r_l - margin)
    center_rewards_coefficient: float = defaults.CENTER_REWARDS_COEFFICIENT  # + coefficient x mean((r_w + r_l)^2)
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE  # "auto", "true" or "false"
    max_prompt_tokens: int = from_parameter("prompt_sequence_length", defaults.PROMPT_SEQUENCE_LENGTH)
    max_response_tokens: int = from_parameter("target_sequence_length", defaults.TARGET_SEQUENCE_LENGTH)
    sharding: str = defaults.SHARDING  # "auto", "none" or "fsdp" (components/common/trainer/sharding.py)
    seed: int = 0
    logging_steps: int = 5
    eval_batch_size: int = 64

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier

    @property
    def max_length(self) -> int:
        """Longest text a pair's side may have, in training and in this stage's evaluation: the
        budget every stage's reward scoring uses. TRL drops longer pairs."""
        from components.common.reward_scoring import reward_model_token_budget

        return reward_model_token_budget(self.max_prompt_tokens, self.max_response_tokens)

    def micro_batch_size(self, processes: int = 1) -> int:
        return micro_batch_size(self.batch_size, self.max_micro_batch_size, processes)

    def gradient_accumulation_steps(self, processes: int = 1) -> int:
        return gradient_accumulation_steps(self.batch_size, self.max_micro_batch_size, processes)

    def validate(self, processes: int = 1) -> None:
        """Raise UserInputError when the batch cannot be shared equally between `processes` GPUs."""
        from components.common.distributed import unshareable_sizes
        from components.common.errors import UserInputError

        problems = [f"batch_size must be >= 1, got {self.batch_size}"] if self.batch_size < 1 else []
        if not self.center_rewards_coefficient >= 0:
            problems.append(f"center_rewards_coefficient must be >= 0, got {self.center_rewards_coefficient}")
        problems += unshareable_sizes({"batch_size": self.batch_size}, processes)
        problems += sharding_problems(self.sharding)
        if problems:
            raise UserInputError("reward-model training settings: " + "; ".join(problems))
