"""Settings of the supervised fine-tuning stage, with their defaults."""

from dataclasses import dataclass

from components.common import defaults
from components.common.sharding import sharding_problems
from components.common.stage_settings import from_parameter
from components.common.steps import DEFAULT_BATCH_SIZE, derive_train_steps, gradient_accumulation_steps, micro_batch_size


@dataclass
class SupervisedTrainingConfig:
    epochs: int = from_parameter("sft_train_epochs", defaults.SFT_TRAIN_EPOCHS)  # passes over the examples: ceil(examples / batch_size) steps each
    batch_size: int = DEFAULT_BATCH_SIZE  # examples per optimizer step
    max_micro_batch_size: int = 16  # examples per forward pass; gradient accumulation makes up the rest
    base_learning_rate: float = 2e-5  # the usual rate of full supervised fine-tuning (TRL's default too)
    learning_rate_multiplier: float = from_parameter("sft_learning_rate_multiplier", 1.0)
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE  # "auto", "true" or "false"
    max_prompt_tokens: int = from_parameter("prompt_sequence_length", defaults.PROMPT_SEQUENCE_LENGTH)  # a longer prompt keeps its end
    max_completion_tokens: int = from_parameter("target_sequence_length", defaults.TARGET_SEQUENCE_LENGTH)  # EOS included; a longer completion is cut
    sharding: str = defaults.SHARDING  # "auto", "none" or "fsdp" (components/common/trainer/sharding.py)
    seed: int = 0
    logging_steps: int = 5

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier

    def steps(self, examples: int) -> int:
        """Optimizer steps for `epochs` passes over `examples`."""
        return derive_train_steps(examples, self.epochs, self.batch_size)

    def micro_batch_size(self, processes: int = 1) -> int:
        return micro_batch_size(self.batch_size, self.max_micro_batch_size, processes)

    def gradient_accumulation_steps(self, processes: int = 1) -> int:
        return gradient_accumulation_steps(self.batch_size, self.max_micro_batch_size, processes)

    def validate(self, processes: int = 1) -> None:
        """Raise UserInputError for settings that cannot train, or a batch `processes` GPUs cannot share."""
        from components.common.chat_templates import check_use_chat_template
        from components.common.distributed import unshareable_sizes
        from components.common.errors import UserInputError

        check_use_chat_template(self.use_chat_template)
        problems = []
        for name, value in (("sft_train_epochs", self.epochs), ("batch_size", self.batch_size),
                            ("prompt_sequence_length", self.max_prompt_tokens),
                            ("target_sequence_length", self.max_completion_tokens)):
            if value < 1:
                problems.append(f"{name} must be >= 1, got {value}")
        if not self.learning_rate > 0:
            problems.append(f"sft_learning_rate_multiplier must be > 0, got {self.learning_rate_multiplier}")
        if self.batch_size >= 1:
            problems += unshareable_sizes({"batch_size": self.batch_size}, processes)
        problems += sharding_problems(self.sharding)
        if problems:
            raise UserInputError("supervised fine-tuning settings: " + "; ".join(problems))
