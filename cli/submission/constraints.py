"""What values each pipeline parameter can take, beyond its type: the mistakes that would otherwise
fail hours into a paid run (negative steps, a negative KL coefficient, a TPU for PyTorch trainers).

Rules are keyed by parameter name and apply to the parameters the template declares.
"""

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from components.common.algorithms import ALGORITHMS, PLAN_INPUTS, plan_stages
from components.common.chat_templates import USE_CHAT_TEMPLATE_VALUES
from components.common.errors import UserInputError
from components.common.steps import GROUP_ALGORITHMS
from components.common.vllm_rollouts import ROLLOUT_ENGINES
from components.tune_policy.config import LOSS_TYPES, SCALE_REWARDS, SEQUENCE
from components.tune_preference.config import DPO_LOSS_TYPES
from pipeline.resources import DEFAULT_REPLICA_COUNT, accelerator_problem

KMS_KEY = re.compile(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+\Z")
TENSORBOARD = re.compile(r"(projects/[^/]+/locations/[^/]+/tensorboards/)?\d+\Z")
CPU_QUANTITY = re.compile(r"(\d+(\.\d+)?|\d+m)\Z")
MEMORY_QUANTITY = re.compile(r"\d+(\.\d+)?([EPTGMK]i?)?\Z")
MAX_DISPLAY_NAME = 128


@dataclass(frozen=True)
class Rule:
    """`accepts(value)` for a value of the right type; `expectation` completes "must be ..."."""

    accepts: Callable[[Any], bool]
    expectation: str


def at_least(bound: float, note: str = "") -> Rule:
    return Rule(lambda v: v >= bound, f"at least {bound}{note}")


def above(bound: float) -> Rule:
    return Rule(lambda v: v > bound and math.isfinite(v), f"greater than {bound}")


def non_empty(what: str) -> Rule:
    return Rule(lambda v: bool(v.strip()), f"{what}, not empty")


def one_of(values: tuple[str, ...]) -> Rule:
    return Rule(lambda v: v in values, f"one of {', '.join(values)}")


def matching(pattern: re.Pattern, what: str, allow_empty: bool = True) -> Rule:
    return Rule(lambda v: (allow_empty and v == "") or bool(pattern.match(v)), what)


RULES: dict[str, Rule] = {
    "prompt_dataset": non_empty("a dataset path or gs:// URI"),
    "large_model_reference": non_empty("a model name, directory or gs:// path"),
    "model_display_name": Rule(lambda v: len(v) <= MAX_DISPLAY_NAME, f"at most {MAX_DISPLAY_NAME} characters"),
    "prompt_sequence_length": at_least(1),
    "target_sequence_length": at_least(1),
    "reward_model_learning_rate_multiplier": above(0),
    "reinforcement_learning_rate_multiplier": above(0),
    "reward_model_train_steps": at_least(0, " (0 derives the steps from the data)"),
    "reinforcement_learning_train_steps": at_least(0, " (0 derives the steps from the data)"),
    "kl_coeff": at_least(0, " (0 disables the KL penalty)"),
    "reward_model_train_epochs": at_least(1),
    "reinforcement_learning_train_epochs": at_least(1),
    "batch_size": at_least(1),
    "reward_model_lora_rank": at_least(0, " (0 trains every weight)"),
    "policy_lora_rank": at_least(0, " (0 trains every weight)"),
    "ppo_epochs": at_least(1),
    "ppo_minibatch_size": at_least(1),
    "sampling_temperature": above(0),
    "algorithm": one_of(ALGORITHMS),
    "num_generations": at_least(2),
    "loss_type": one_of(LOSS_TYPES),
    "epsilon": Rule(lambda v: 0 < v < 1, "in (0, 1)"),
    "epsilon_high": at_least(0, " (0 uses epsilon)"),
    "scale_rewards": one_of(SCALE_REWARDS),
    "rollout_engine": one_of(ROLLOUT_ENGINES),
    "vllm_gpu_memory_utilization": Rule(lambda v: 0 < v <= 1, "in (0, 1]"),
    "importance_sampling_cap": at_least(0, " (0 turns the correction off)"),
    "dpo_beta": above(0),
    "dpo_loss_type": Rule(lambda v: bool(v.strip()) and all(t.strip() in DPO_LOSS_TYPES for t in v.split(",")),
                          f"one of {', '.join(DPO_LOSS_TYPES)}, or several joined by commas"),
    "kto_desirable_weight": above(0),
    "kto_undesirable_weight": above(0),
    "sft_train_epochs": at_least(1),
    "sft_learning_rate_multiplier": above(0),
    "missing_eos_penalty": at_least(0),
    "use_chat_template": one_of(USE_CHAT_TEMPLATE_VALUES),
    "eval_split_fraction": Rule(lambda v: 0 <= v < 1, "in [0, 1)"),
    "max_eval_prompts": at_least(1),
    "seed": at_least(0),
    "accelerator_count": at_least(1),
    "replica_count": at_least(1),
    "checkpoint_interval_steps": at_least(0, " (0 checkpoints about every 10% of the steps)"),
    "cpu_limit": matching(CPU_QUANTITY, "a CPU count such as '8', '0.5' or '500m'", allow_empty=False),
    "memory_limit": matching(MEMORY_QUANTITY, "a memory size such as '32G' or '64Gi'", allow_empty=False),
    "encryption_spec_key_name": matching(
        KMS_KEY, "empty or a Cloud KMS key: projects/P/locations/L/keyRings/R/cryptoKeys/K"),
    "tensorboard_resource_id": matching(
        TENSORBOARD, "empty, a TensorBoard id (digits) or projects/P/locations/L/tensorboards/ID"),
}

# Problems that involve several parameters: (names, predicate on their values, message). Callers pass the
# template's defaults with the values given; a template compiled before `replica_count` existed has one machine.
COUNT_DEFAULTS = {"replica_count": DEFAULT_REPLICA_COUNT}
CROSS_RULES: tuple[tuple[tuple[str, ...], Callable[..., bool], str], ...] = (
    (("ppo_minibatch_size", "batch_size"), lambda minibatch, batch: minibatch <= batch,
     "ppo_minibatch_size ({0}) must not exceed batch_size ({1})"),
    (("batch_size", "accelerator_count", "replica_count"),
     lambda batch, gpus, machines: gpus < 1 or machines < 1 or batch % (gpus * machines) == 0,
     "batch_size ({0}) must be a multiple of accelerator_count x replica_count ({1} x {2}): each GPU takes an "
     "equal share of a batch"),
    (("batch_size", "num_generations", "algorithm"),
     lambda batch, k, algorithm: algorithm not in GROUP_ALGORITHMS or k < 1 or batch % k == 0,
     "batch_size ({0}) must be a multiple of num_generations ({1}) for {2}: a batch holds whole groups of "
     "responses to one prompt"),
    (("ppo_minibatch_size", "accelerator_count", "replica_count"),
     lambda minibatch, gpus, machines: gpus < 1 or machines < 1 or minibatch % (gpus * machines) == 0,
     "ppo_minibatch_size ({0}) must be a multiple of accelerator_count x replica_count ({1} x {2}): each GPU "
     "takes an equal share of a minibatch"),
    (("loss_type", "algorithm"), lambda loss_type, algorithm: loss_type != SEQUENCE or algorithm == "rloo",
     "loss_type {0!r} is RLOO's (one clipped ratio per response, as TRL's RLOOTrainer), not {1}'s"),
)


def _stage_plan_problem(algorithm: str, reward_function: str, preference_dataset: str, for_eval: bool) -> str:
    try:
        plan_stages(algorithm, reward_function, preference_dataset, for_eval)
    except UserInputError as error:
        return str(error)
    return ""


def _held_out_problem(eval_split_fraction: float | None, eval_dataset: str | None) -> str:
    """The evaluation needs held-out prompts (and pairs): from eval_dataset, or split off the datasets."""
    from components.common.data.preparation import NO_EVAL_DATA

    return NO_EVAL_DATA if eval_split_fraction == 0 and not (eval_dataset or "").strip() else ""


def value_problems(values: dict[str, Any]) -> list[str]:
    """Every rule that the (already type-checked) values break, one message each."""
    problems = []
    for name, value in values.items():
        rule = RULES.get(name)
        if rule is not None and value is not None and not rule.accepts(value):
            problems.append(f"{name}: {value!r} is not allowed: must be {rule.expectation}")
    if isinstance(values.get("accelerator_type"), str):
        problem = accelerator_problem(values["accelerator_type"])
        if problem:
            problems.append(f"accelerator_type: {problem}")
    plan_inputs = [values.get(name) for name in PLAN_INPUTS]
    if values.get("algorithm") in ALGORITHMS and None not in plan_inputs:
        problem = _stage_plan_problem(*plan_inputs)
        if problem:
            problems.append(problem)
    problem = _held_out_problem(values.get("eval_split_fraction"), values.get("eval_dataset"))
    if problem:
        problems.append(problem)
    for names, accepts, message in CROSS_RULES:
        given = [values.get(name, COUNT_DEFAULTS.get(name)) for name in names]
        if None not in given and not accepts(*given):
            problems.append(message.format(*given))
    return problems
