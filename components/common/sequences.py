"""Token ids of prompts and answers, as the policy reads and writes them.

The policy answers a prompt with tokens that follow the prompt's own tokens
(components/common/generation.py): the prompt is encoded alone (its last `max_prompt_tokens`
tokens, with the special tokens the tokenizer adds), and the answer is the tokens after it, up to
EOS, at most `max_response_tokens` of them with the EOS. Every stage that trains on or scores given
answers uses them in that form: supervised fine-tuning (components/supervised_fine_tuning/
tokenization.py), preference tuning (components/tune_preference/trl_rows.py) and the
implicit-reward evaluation (components/common/implicit_reward.py): the prompt's ids as generation
encodes them, then the answer encoded alone and EOS; an answer too long for the budget is cut there
and gets no EOS, as a generated one cut at the limit (the policy is not taught to stop where a text
was cut).

TRL's trainers would instead encode prompt + answer as one text. Under a BPE tokenizer that joins
tokens across the seam (a prompt's trailing space and the answer's first word become one token), so
the policy would learn token sequences it never produces: on the sample task three answers in four
would change.
"""

from collections.abc import Sequence

import torch

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.errors import UserInputError
from components.common.generation import encode_prompts

PROMPTS_PER_ENCODING = 256  # prompts padded together; bounds the memory of one encoding


def prompt_ids(formatter: PromptFormatter, prompts: Sequence[Prompt], max_prompt_tokens: int) -> list[list[int]]:
    """Each prompt's ids, rendered the policy's way and encoded exactly as generation encodes it."""
    tokenizer = formatter.tokenizer
    sides = tokenizer.padding_side, tokenizer.truncation_side  # encode_prompts sets both to "left"
    ids = []
    try:
        for start in range(0, len(prompts), PROMPTS_PER_ENCODING):
            texts = formatter.prompts(prompts[start : start + PROMPTS_PER_ENCODING])
            padded, mask = encode_prompts(tokenizer, texts, max_prompt_tokens, torch.device("cpu"))
            ids += [row[keep.bool()].tolist() for row, keep in zip(padded, mask)]
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = sides
    return ids


def prompt_lengths(formatter: PromptFormatter, prompts: Sequence[Prompt]) -> list[int]:
    """Each prompt's token count before generation cuts it to its budget: `prompt_ids` keeps the
    last `max_prompt_tokens` tokens of a longer one."""
    return [len(ids) for ids in formatter.tokenizer(formatter.prompts(prompts))["input_ids"]]


def answer_ids(formatter: PromptFormatter, answers: Sequence[str], max_response_tokens: int) -> list[list[int]]:
    """Each answer's ids as the policy would write them after the prompt: its tokens and EOS, or its first
    `max_response_tokens` tokens when they do not fit with the EOS."""
    tokenizer = formatter.tokenizer
    if tokenizer.eos_token_id is None:
        raise UserInputError(
            f"the tokenizer of {tokenizer.name_or_path} has no EOS token: a tuned policy could not end its answers"
        )
    if not answers:
        return []
    encoded = tokenizer([formatter.answer(answer) for answer in answers], add_special_tokens=False)["input_ids"]
    return [(ids + [tokenizer.eos_token_id])[:max_response_tokens] for ids in encoded]
