"""Settings of the online policy-tuning stage (PPO, GRPO, RLOO), with their defaults in one place.

A field filled by a pipeline parameter of another name says which (components/common/stage_settings.py)."""

from dataclasses import dataclass

from components.common import defaults
from components.common.algorithms import ONLINE_ALGORITHMS
from components.common.chat_templates import USE_CHAT_TEMPLATE_VALUES
from components.common.sharding import sharding_problems
from components.common.stage_settings import from_parameter
from components.common.vllm_rollouts import engine_setting_problems
from components.common.steps import DEFAULT_BATCH_SIZE, GROUP_ALGORITHMS, prompts_per_rl_step, responses_per_prompt

LR_SCHEDULES = ("constant", "linear")
SEQUENCE = "sequence"  # RLOO's loss as TRL's RLOOTrainer computes it: one clipped ratio per response
AUTO = "auto"
# TRL's names for how token losses are averaged, RLOO's sequence loss, and "auto": each algorithm's loss in TRL
LOSS_TYPES = (AUTO, "grpo", "dr_grpo", "dapo", SEQUENCE)
AUTO_LOSS_TYPES = {"grpo": "dapo", "rloo": SEQUENCE}  # GRPOTrainer's default loss_type; RLOOTrainer's only loss
SCALE_REWARDS = ("group", "batch", "none")  # TRL's names for what a GRPO advantage is divided by


@dataclass
class PolicyTuningConfig:
    """How the policy is tuned against the reward (a reward model, a reward function or both) with
    PPO, GRPO or RLOO (`algorithm`).

    One step = one rollout of `batch_size` responses, then `epochs` passes over it in
    minibatches of `minibatch_size` responses (one optimizer step per minibatch). Forward passes
    run `forward_batch_size` rows at a time (gradients accumulate inside a minibatch), which
    bounds memory without changing the maths.

    PPO samples one response per prompt (`batch_size` prompts a step) and learns a value head (GAE,
    clipped value loss, `value_clip_range`). GRPO and RLOO sample `num_generations` responses per prompt
    (`batch_size / num_generations` prompts a step), need no critic (no value head is trained or
    saved) and put one sequence-level advantage on every token of a response: GRPO the reward minus
    its group's mean, divided as `scale_rewards` says; RLOO the reward minus the mean of the other
    responses to the same prompt. All three clip the ratio to [1 - epsilon, 1 + epsilon_high]; GRPO and
    RLOO average token losses as `loss_type` says (TRL's names). `epochs` is TRL's `num_iterations`.
    KL to the reference (coefficient `kl_coeff`, 0: no reference loaded): PPO and RLOO subtract it
    from the reward (PPO per token, RLOO summed over the response, as TRL's RLOOTrainer), GRPO adds
    `kl_coeff` times the k3 estimate exp(ref - logp) - (ref - logp) - 1 to every token's loss (as
    TRL's GRPOTrainer's `beta`).
    """

    steps: int = from_parameter("reinforcement_learning_train_steps")
    algorithm: str = defaults.ALGORITHM  # "ppo", "grpo" or "rloo"
    num_generations: int = defaults.NUM_GENERATIONS  # GRPO/RLOO: responses sampled per prompt; PPO ignores it
    loss_type: str = defaults.LOSS_TYPE  # GRPO/RLOO loss: "auto", "grpo", "dr_grpo", "dapo" (as in TRL) or "sequence"
    epsilon: float = defaults.EPSILON  # lower clip of the ratio, 1 - epsilon (all three algorithms)
    epsilon_high: float = defaults.EPSILON_HIGH  # upper clip, 1 + epsilon_high; 0 means the same as epsilon
    scale_rewards: str = defaults.SCALE_REWARDS  # GRPO: divide advantages by the group's std ("group"), the batch's, or not ("none")
    reward_function: str = ""  # "" (the reward model only), a built-in name, file.py:name or module:name
    batch_size: int = DEFAULT_BATCH_SIZE  # prompts per rollout (Vertex: 64)
    minibatch_size: int = from_parameter("ppo_minibatch_size", defaults.PPO_MINIBATCH_SIZE)  # rollouts per optimizer step
    forward_batch_size: int = 16  # rows per forward pass; only memory depends on it
    epochs: int = from_parameter("ppo_epochs", defaults.PPO_EPOCHS)  # passes over each rollout (TRL: num_iterations)
    base_learning_rate: float = defaults.POLICY_BASE_LEARNING_RATE
    learning_rate_multiplier: float = from_parameter("reinforcement_learning_rate_multiplier", 1.0)
    value_head_learning_rate_scale: float = 10.0  # the value head starts from zero, the trunk is pretrained
    sharding: str = defaults.SHARDING  # "auto", "none" or "fsdp" (components/common/sharding.py)
    activation_checkpointing: bool = False  # the update recomputes each decoder layer's activations in its backward
    lr_schedule: str = "linear"  # "linear": warmup then linear decay to 0; "constant": warmup then flat
    warmup_fraction: float = 0.05  # share of the optimizer steps spent warming up
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    kl_coeff: float = defaults.KL_COEFF  # 0: no KL penalty and no reference model
    value_clip_range: float = 0.2
    value_loss_coeff: float = 0.1  # the value loss shares the policy's trunk: keep it from dominating
    gamma: float = 1.0
    gae_lambda: float = 0.95
    whiten_advantages: bool = True
    missing_eos_penalty: float = defaults.MISSING_EOS_PENALTY  # subtracted from the score of a response cut at max_new_tokens
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE  # "auto", "true" or "false", for each model on its own
    temperature: float = from_parameter("sampling_temperature", 1.0)
    max_new_tokens: int = from_parameter("target_sequence_length", defaults.TARGET_SEQUENCE_LENGTH)
    max_prompt_tokens: int = from_parameter("prompt_sequence_length", defaults.PROMPT_SEQUENCE_LENGTH)
    lora_rank: int = from_parameter("policy_lora_rank", defaults.POLICY_LORA_RANK)  # 0 trains every weight
    lora_alpha_ratio: float = 2.0  # lora_alpha = ratio * rank
    rollout_engine: str = defaults.ROLLOUT_ENGINE  # "auto", "transformers" or "vllm" (components/common/vllm_rollouts.py)
    vllm_gpu_memory_utilization: float = defaults.VLLM_GPU_MEMORY_UTILIZATION
    importance_sampling_cap: float = defaults.IMPORTANCE_SAMPLING_CAP  # 0: no correction of vLLM's samples
    seed: int = 0

    @property
    def learning_rate(self) -> float:
        return self.base_learning_rate * self.learning_rate_multiplier

    @property
    def lora_alpha(self) -> float:
        return self.lora_alpha_ratio * self.lora_rank

    @property
    def grouped(self) -> bool:
        """GRPO or RLOO: several responses per prompt, sequence-level advantages, no critic."""
        return self.algorithm in GROUP_ALGORITHMS

    @property
    def generations_per_prompt(self) -> int:
        return responses_per_prompt(self.algorithm, self.num_generations)

    @property
    def prompts_per_step(self) -> int:
        return prompts_per_rl_step(self.batch_size, self.algorithm, self.num_generations)

    @property
    def loss(self) -> str:
        """The loss `loss_type` names, "auto" resolved to the algorithm's loss in TRL (AUTO_LOSS_TYPES)."""
        return AUTO_LOSS_TYPES.get(self.algorithm, "dapo") if self.loss_type == AUTO else self.loss_type

    @property
    def clip_high(self) -> float:
        """The upper clip of the ratio: 1 + clip_high."""
        return self.epsilon_high or self.epsilon

    @property
    def minibatches_per_epoch(self) -> int:
        return -(-self.batch_size // self.minibatch_size)

    @property
    def one_update_per_rollout(self) -> bool:
        """One optimizer step per rollout, over all of it: the update's forward pass meets every response
        once, before the weights change, so it gives the log-probs of the policy that sampled them."""
        return self.epochs == 1 and self.minibatches_per_epoch == 1

    @property
    def optimizer_steps(self) -> int:
        return self.steps * self.epochs * self.minibatches_per_epoch

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
            "epochs (ppo_epochs)": self.epochs,
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
        if self.epsilon <= 0 or self.epsilon_high < 0 or self.value_clip_range <= 0:
            problems.append(f"epsilon and value_clip_range must be > 0 and epsilon_high >= 0, got {self.epsilon}, "
                            f"{self.value_clip_range} and {self.epsilon_high}")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            problems.append("gamma and gae_lambda must be in [0, 1]")
        problems += sharding_problems(self.sharding)
        problems += engine_setting_problems(self.rollout_engine, self.vllm_gpu_memory_utilization)
        if self.importance_sampling_cap < 0:
            problems.append(f"importance_sampling_cap must be >= 0, got {self.importance_sampling_cap}")
        if self.algorithm not in ONLINE_ALGORITHMS:
            problems.append(f"algorithm must be one of {ONLINE_ALGORITHMS}, got {self.algorithm!r}")
        if self.grouped:
            if self.num_generations < 2:
                problems.append(f"num_generations must be >= 2 for {self.algorithm}, got {self.num_generations}")
            elif self.batch_size % self.num_generations:
                problems.append(
                    f"batch_size {self.batch_size} must be a multiple of num_generations {self.num_generations} "
                    f"for {self.algorithm} (batch_size counts responses, num_generations of them per prompt)"
                )
            elif processes > 1 and (self.batch_size // processes) % self.num_generations:
                problems.append(
                    f"batch_size {self.batch_size} must share into {processes} GPUs as whole groups of "
                    f"num_generations {self.num_generations} responses"
                )
            if self.loss_type not in LOSS_TYPES:
                problems.append(f"loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
            elif self.loss == SEQUENCE and self.algorithm != "rloo":
                problems.append(f"loss_type {SEQUENCE!r} is RLOO's (TRL's RLOOTrainer), not {self.algorithm}'s")
            if self.scale_rewards not in SCALE_REWARDS:
                problems.append(f"scale_rewards must be one of {SCALE_REWARDS}, got {self.scale_rewards!r}")
        if problems:
            raise UserInputError("policy tuning settings: " + "; ".join(problems))
