"""Settings of the reward-model stage, with their defaults."""

from dataclasses import dataclass

from components.common.steps import DEFAULT_BATCH_SIZE


@dataclass
class RewardTrainingConfig:
    steps: int
    batch_size: int = DEFAULT_BATCH_SIZE  # pairs per optimizer step (Vertex: 64)
    max_micro_batch_size: int = 16  # pairs per forward pass; gradient accumulation makes up the rest
    base_learning_rate: float = 1e-4
    learning_rate_multiplier: float = 1.0
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lora_rank: int = 4  # 0 trains every weight
    use_margin: bool = False  # pass the pairs' "margin" to the loss: -log sigmoid(r_w - r_l - margin)
    max_prompt_tokens: int = 512
    max_response_tokens: int = 64
    seed: int = 0
    logging_steps: int = 5
    eval_batch_size: int = 64

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier

    @property
    def max_length(self) -> int:
        """Longest prompt + response + EOS a pair may have."""
        return self.max_prompt_tokens + self.max_response_tokens + 1

    @property
    def micro_batch_size(self) -> int:
        """The largest divisor of batch_size that fits in max_micro_batch_size."""
        for size in range(min(self.batch_size, self.max_micro_batch_size), 0, -1):
            if self.batch_size % size == 0:
                return size
        return 1

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.batch_size // self.micro_batch_size
