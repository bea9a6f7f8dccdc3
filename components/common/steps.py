"""How many optimizer steps a training stage runs when the user leaves the count at 0."""

import math

DEFAULT_BATCH_SIZE = 64
GROUP_ALGORITHMS = ("grpo", "rloo")  # several responses per prompt: batch_size counts responses


def responses_per_prompt(algorithm: str, num_generations: int) -> int:
    """How many responses an RL step samples for each of its prompts: 1 for PPO, k for GRPO/RLOO."""
    return num_generations if algorithm in GROUP_ALGORITHMS else 1


def prompts_per_rl_step(batch_size: int, algorithm: str, num_generations: int) -> int:
    """Prompts one RL step consumes: `batch_size` responses, `responses_per_prompt` for each prompt."""
    return batch_size // responses_per_prompt(algorithm, num_generations)


def derive_train_steps(rows: int, epochs: int, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Steps for `epochs` passes over `rows` examples: ``ceil(rows / batch_size) * epochs``.

    This is the rule of the public course on Vertex's RLHF pipeline (3000 rows, 30 epochs -> 1410).
    """
    if rows < 0 or epochs < 0 or batch_size <= 0:
        raise ValueError(
            f"cannot derive steps from rows={rows}, epochs={epochs}, batch_size={batch_size}: "
            "rows and epochs must be >= 0 and batch_size > 0"
        )
    return math.ceil(rows / batch_size) * epochs


def resolve_train_steps(requested: int, rows: int, epochs: int, batch_size: int) -> int:
    """The user's step count when it is positive, else the count derived from the data."""
    if requested < 0:
        raise ValueError(f"a step count cannot be negative (got {requested})")
    return requested if requested > 0 else derive_train_steps(rows, epochs, batch_size)


def micro_batch_size(examples_per_step: int, max_micro_batch_size: int, processes: int = 1) -> int:
    """Examples per forward pass in each of `processes`: the largest divisor of their share of a step
    that fits in `max_micro_batch_size`; gradient accumulation makes up the rest of the step."""
    share = examples_per_step // processes
    for size in range(min(share, max_micro_batch_size), 0, -1):
        if share % size == 0:
            return size
    return 1


def gradient_accumulation_steps(examples_per_step: int, max_micro_batch_size: int, processes: int = 1) -> int:
    """Forward passes per optimizer step in each process, so that every step sees `examples_per_step`."""
    return examples_per_step // (processes * micro_batch_size(examples_per_step, max_micro_batch_size, processes))
