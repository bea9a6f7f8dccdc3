"""The tokenized rows TRL's DPOTrainer and KTOTrainer train on (their collators' columns).

DPO: `prompt_ids`, `chosen_ids`, `rejected_ids`, one row per pair. KTO: `prompt_ids`,
`completion_ids`, `label` and `KL_completion_ids`, one row per desirable or undesirable answer, in a
seeded random order that TRL keeps (KTO reads its rows sequentially; see `with_kl_completions`).
Token ids follow components/common/sequences.py: the prompt as generation encodes it, the answer
after it, then EOS.
"""

import random

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.tune_preference.kto_rows import KTORow
from components.common.sequences import answer_ids, prompt_ids


def dpo_rows(pairs: list[dict], formatter: PromptFormatter, max_prompt_tokens: int, max_response_tokens: int) -> list[dict]:
    prompts = prompt_ids(formatter, [Prompt.from_row(pair) for pair in pairs], max_prompt_tokens)
    chosen = answer_ids(formatter, [pair["chosen"] for pair in pairs], max_response_tokens)
    rejected = answer_ids(formatter, [pair["rejected"] for pair in pairs], max_response_tokens)
    return [
        {"prompt_ids": p, "chosen_ids": c, "rejected_ids": r} for p, c, r in zip(prompts, chosen, rejected, strict=True)
    ]


def kto_rows(
    rows: list[KTORow],
    formatter: PromptFormatter,
    max_prompt_tokens: int,
    max_response_tokens: int,
    micro_batch_size: int,
    seed: int,
) -> list[dict]:
    """The KTO rows shuffled with `seed` (desirable and undesirable answers, and the prompts, mixed
    in every micro batch), each with the KL completion of its micro batch."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    shuffled = [rows[i] for i in order]
    prompts = prompt_ids(formatter, [row.prompt for row in shuffled], max_prompt_tokens)
    completions = answer_ids(formatter, [row.completion for row in shuffled], max_response_tokens)
    tokenized = [
        {"prompt_ids": p, "completion_ids": c, "label": row.desirable}
        for p, c, row in zip(prompts, completions, shuffled, strict=True)
    ]
    return with_kl_completions(tokenized, micro_batch_size)


def with_kl_completions(rows: list[dict], micro_batch_size: int) -> list[dict]:
    """`rows` with `KL_completion_ids`: the completion of the row before, within each micro batch
    (the first row takes the last row's).

    KTO's reference point, KL(policy || reference), is estimated on mismatched (prompt, completion)
    pairs made from the answers of the same micro batch, which TRL's collator reads from this column.
    The micro batches are consecutive rows, because KTOTrainer reads its rows in order (TRL's
    `train_sampling_strategy="sequential"`).
    """
    completed = []
    for start in range(0, len(rows), micro_batch_size):
        batch = rows[start : start + micro_batch_size]
        shifted = [batch[-1]] + batch[:-1]
        completed += [{**row, "KL_completion_ids": before["completion_ids"]} for row, before in zip(batch, shifted)]
    return completed
