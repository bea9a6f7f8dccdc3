"""Deterministic held-out sets: the same seed and data give the same split on every machine.

Examples are ordered by a keyed hash of their prompt (not by Python's per-process `hash`, not by
file order), and pairs that share a prompt stay on the same side, so the split itself never leaks a
prompt from training into evaluation.
"""

import hashlib
from collections import defaultdict

from components.common.data.records import PreferencePair, PromptRow


def _rank(seed: int, text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16,
                           key=str(seed).encode()).digest()


def split_pairs(pairs: list[PreferencePair], fraction: float, seed: int) -> tuple[list, list]:
    """(train, eval) with about `fraction` of the pairs held out, whole prompts at a time.

    With a positive fraction and at least two prompts, both sides get at least one pair.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"eval_split_fraction must be in [0, 1), got {fraction}")
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        by_prompt[pair.prompt].append(index)
    target = round(fraction * len(pairs))
    if fraction > 0 and len(by_prompt) >= 2:
        target = max(target, 1)
    held: set[int] = set()
    for prompt in sorted(by_prompt, key=lambda p: _rank(seed, p)):
        if len(held) >= target or len(held) + len(by_prompt[prompt]) >= len(pairs):
            break
        held.update(by_prompt[prompt])
    train = [p for i, p in enumerate(pairs) if i not in held]
    held_out = [p for i, p in enumerate(pairs) if i in held]
    return train, held_out


def select(rows: list[PromptRow], count: int, seed: int) -> tuple[list, list]:
    """(`count` rows chosen by the seed, the rest), each in the original order."""
    chosen = set(sorted(range(len(rows)), key=lambda i: _rank(seed, rows[i].prompt))[:max(count, 0)])
    return [r for i, r in enumerate(rows) if i in chosen], [r for i, r in enumerate(rows) if i not in chosen]


def split_prompts(rows: list[PromptRow], fraction: float, max_eval: int, seed: int) -> tuple[list, list]:
    """(train, eval): about `fraction` of the prompts held out, at most `max_eval`, at least one train row."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"eval_split_fraction must be in [0, 1), got {fraction}")
    count = round(fraction * len(rows))
    if fraction > 0 and len(rows) >= 2:
        count = max(count, 1)
    count = min(count, max_eval, max(len(rows) - 1, 0))
    held_out, train = select(rows, count, seed)
    return train, held_out


def leaked_pairs(train: list[PreferencePair], held_out: list[PreferencePair]) -> list[tuple]:
    """(train pair, eval pair) for every pair that appears on both sides."""
    eval_by_key = {p.key(): p for p in held_out}
    return [(p, eval_by_key[p.key()]) for p in train if p.key() in eval_by_key]


def shared_prompts(train: list, held_out: list) -> int:
    """How many distinct held-out prompts also appear in training."""
    return len({e.prompt for e in held_out} & {t.prompt for t in train})
