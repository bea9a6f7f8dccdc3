"""Settings of the PPO policy-tuning stage, with their defaults in one place."""

from dataclasses import dataclass

from components.common import defaults
from components.common.chat_templates import USE_CHAT_TEMPLATE_VALUES
from components.common.steps import DEFAULT_BATCH_SIZE

LR_SCHEDULES = ("constant", "linear")


@dataclass
class PPOConfig:
    """How the policy is tuned against the reward model with PPO.

    One PPO step = one rollout of `batch_size` prompts, then `ppo_epochs` passes over it in
    minibatches of `minibatch_size` rollouts (one optimizer step per minibatch). Forward passes
    run `forward_batch_size` rows at a time (gradients accumulate inside a minibatch), which
    bounds memory without changing the maths.
    """

    steps: int
    batch_size: int = DEFAULT_BATCH_SIZE  # prompts per rollout (Vertex: 64)
    minibatch_size: int = defaults.PPO_MINIBATCH_SIZE  # rollouts per optimizer step
    forward_batch_size: int = 16  # rows per forward pass; only memory depends on it
    ppo_epochs: int = defaults.PPO_EPOCHS
    base_learning_rate: float = 1e-5  # Vertex's base rate for the policy
    learning_rate_multiplier: float = 1.0  # Vertex's reinforcement_learning_rate_multiplier
    value_head_learning_rate_scale: float = 10.0  # the value head starts from zero, the trunk is pretrained
    lr_schedule: str = "linear"  # "linear": warmup then linear decay to 0; "constant": warmup then flat
    warmup_fraction: float = 0.05  # share of the optimizer steps spent warming up
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    kl_coeff: float = defaults.KL_COEFF  # 0: no KL penalty and no reference model
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    value_loss_coeff: float = 0.1  # the value loss shares the policy's trunk: keep it from dominating
    gamma: float = 1.0
    gae_lambda: float = 0.95
    whiten_advantages: bool = True
    missing_eos_penalty: float = defaults.MISSING_EOS_PENALTY  # subtracted from the score of a response cut at max_new_tokens
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE  # "auto", "true" or "false", for each model on its own
    temperature: float = 1.0
    max_new_tokens: int = defaults.TARGET_SEQUENCE_LENGTH
    max_prompt_tokens: int = defaults.PROMPT_SEQUENCE_LENGTH
    lora_rank: int = defaults.POLICY_LORA_RANK  # 0 trains every weight
    lora_alpha_ratio: float = 2.0  # lora_alpha = ratio * rank
    seed: int = 0

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier

    @property
    def lora_alpha(self) -> float:
        return self.lora_alpha_ratio * self.lora_rank

    @property
    def minibatches_per_epoch(self) -> int:
        return -(-self.batch_size // self.minibatch_size)

    @property
    def optimizer_steps(self) -> int:
        return self.steps * self.ppo_epochs * self.minibatches_per_epoch

    @property
    def reward_max_tokens(self) -> int:
        """Longest text the reward model reads: the same budget it was trained and evaluated with."""
        from components.common.reward_scoring import reward_model_token_budget

        return reward_model_token_budget(self.max_prompt_tokens, self.max_new_tokens)

    def validate(self, processes: int = 1) -> None:
        """Raise UserInputError naming every setting no PPO run can use on `processes` GPUs."""
        from components.common.distributed import unshareable_sizes
        from components.common.errors import UserInputError

        positive_ints = {
            "steps (reinforcement_learning_train_steps)": self.steps,
            "batch_size": self.batch_size,
            "minibatch_size (ppo_minibatch_size)": self.minibatch_size,
            "forward_batch_size": self.forward_batch_size,
            "ppo_epochs": self.ppo_epochs,
            "max_new_tokens (target_sequence_length)": self.max_new_tokens,
            "max_prompt_tokens (prompt_sequence_length)": self.max_prompt_tokens,
        }
        problems = [f"{name} must be >= 1, got {value}" for name, value in positive_ints.items() if value < 1]
        if self.minibatch_size > self.batch_size:
            problems.append(
                f"minibatch_size (ppo_minibatch_size) {self.minibatch_size} exceeds batch_size {self.batch_size}"
            )
        problems += unshareable_sizes(
            {"batch_size": self.batch_size, "minibatch_size (ppo_minibatch_size)": self.minibatch_size}, processes
        )
        if self.learning_rate <= 0:
            problems.append(
                f"the learning rate must be > 0, got {self.base_learning_rate} x multiplier "
                f"{self.learning_rate_multiplier} (reinforcement_learning_rate_multiplier)"
            )
        if self.kl_coeff < 0:
            problems.append(f"kl_coeff must be >= 0, got {self.kl_coeff}")
        if self.temperature <= 0:
            problems.append(f"temperature (sampling_temperature) must be > 0 for PPO sampling, got {self.temperature}")
        if self.lora_rank < 0:
            problems.append(f"lora_rank (policy_lora_rank) must be >= 0, got {self.lora_rank}")
        if self.missing_eos_penalty < 0:
            problems.append(f"missing_eos_penalty must be >= 0, got {self.missing_eos_penalty}")
        if self.use_chat_template not in USE_CHAT_TEMPLATE_VALUES:
            problems.append(f"use_chat_template must be one of {USE_CHAT_TEMPLATE_VALUES}, got {self.use_chat_template!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.clip_range <= 0 or self.value_clip_range <= 0:
            problems.append("clip_range and value_clip_range must be > 0")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            problems.append("gamma and gae_lambda must be in [0, 1]")
        if problems:
            raise UserInputError("policy tuning settings: " + "; ".join(problems))
