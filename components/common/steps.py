"""How many optimizer steps a training stage runs when the user leaves the count at 0."""

import math

DEFAULT_BATCH_SIZE = 64


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
