"""Settings of the evaluation stage, with their defaults in one place."""

from dataclasses import dataclass

from components.common import defaults
from components.common.stage_settings import from_parameter
from components.common.vllm_rollouts import engine_setting_problems


@dataclass
class EvaluationConfig:
    """How the base and the tuned policy are sampled, scored and reported.

    `temperature` 0 decodes greedily; any positive value samples at that temperature. Both
    policies see the same random stream: torch is seeded with `seed` before each one generates.
    """

    max_new_tokens: int = from_parameter("target_sequence_length", defaults.TARGET_SEQUENCE_LENGTH)
    max_prompt_tokens: int = from_parameter("prompt_sequence_length", defaults.PROMPT_SEQUENCE_LENGTH)
    temperature: float = from_parameter("sampling_temperature", 1.0)
    max_eval_prompts: int = defaults.MAX_EVAL_PROMPTS
    gold_scorer: str = ""  # a registered gold scorer's name (components/common/registry.py); "" = none
    # a rule reward (components/common/reward_functions.py): a built-in, file.py:name or module:name; "" = none.
    # When set, the evaluation reports accuracy (mean rule reward), sampled and greedy, of both policies.
    reward_function: str = ""
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE  # "auto", "true" or "false", for each model on its own
    num_generations: int = defaults.NUM_GENERATIONS  # GRPO/RLOO's group size, named in the no-learning warning
    rollout_engine: str = defaults.ROLLOUT_ENGINE  # what samples: "auto", "transformers" or "vllm" (common/vllm_rollouts.py)
    vllm_gpu_memory_utilization: float = defaults.VLLM_GPU_MEMORY_UTILIZATION
    seed: int = 0
    generation_batch_size: int = 16  # prompts per generate() call and per log-probability pass
    reward_batch_size: int = 32  # texts per reward-model forward pass
    markdown_rows: int = 20  # side-by-side rows in the Markdown report (the HTML report has all)

    @property
    def reward_max_tokens(self) -> int:
        """Longest text the reward model reads: the same budget it was trained and evaluated with."""
        from components.common.reward_scoring import reward_model_token_budget

        return reward_model_token_budget(self.max_prompt_tokens, self.max_new_tokens)

    def validate(self) -> None:
        """Raise UserInputError for settings no evaluation can run with."""
        from components.common.errors import UserInputError

        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens (target_sequence_length) must be >= 1, got {self.max_new_tokens}")
        if self.max_prompt_tokens < 1:
            problems.append(
                f"max_prompt_tokens (prompt_sequence_length) must be >= 1, got {self.max_prompt_tokens}"
            )
        if self.temperature < 0:
            problems.append(f"temperature (sampling_temperature) must be >= 0, got {self.temperature}")
        if self.max_eval_prompts < 1:
            problems.append(f"max_eval_prompts must be >= 1, got {self.max_eval_prompts}")
        if self.generation_batch_size < 1 or self.reward_batch_size < 1:
            problems.append("batch sizes must be >= 1")
        problems += engine_setting_problems(self.rollout_engine, self.vllm_gpu_memory_utilization)
        if problems:
            raise UserInputError("evaluation settings: " + "; ".join(problems))
