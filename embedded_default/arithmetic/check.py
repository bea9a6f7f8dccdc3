r"""How well a model answers the arithmetic task: the share of replies whose last `\boxed{}` holds the
ground truth (the `boxed-answer` reward), and the share with a complete `\boxed{}` at all.

The tests check the built-in model's warm-up with it; `rlhf-pipeline run --sample-task arithmetic` is the
check that GRPO raises the accuracy (the evaluation stage measures it, sampled and greedy).
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from components.common.data.answers import last_boxed
from components.common.reward_functions import boxed_answer

MAX_NEW_TOKENS = 16
MAX_PROMPT_TOKENS = 64


@dataclass(frozen=True)
class Accuracy:
    accuracy: float  # share of replies whose last \boxed{} gives the ground truth (boxed-answer's reward)
    boxed: float  # share of replies with a complete \boxed{}


@torch.no_grad()
def measure(model_dir: str | Path, rows: list[dict], greedy: bool, seed: int = 0,
            batch_size: int = 100) -> Accuracy:
    """Accuracy of the model at `model_dir` on prompt rows ({"prompt": messages, "ground_truth": ...}),
    the prompts rendered with its chat template as every stage renders them."""
    from transformers import AutoModelForCausalLM

    from components.common.chat_templates import PromptFormatter
    from components.common.data.transcripts import Message, Prompt
    from components.common.generation import generate_responses
    from components.common.models import load_tokenizer

    tokenizer = load_tokenizer(str(model_dir), padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    formatter = PromptFormatter(tokenizer, "true", str(model_dir))
    texts = [formatter.prompt(Prompt(m[-1]["content"], tuple(Message(x["role"], x["content"]) for x in m)))
             for m in (row["prompt"] for row in rows)]
    torch.manual_seed(seed)
    replies = []
    for start in range(0, len(texts), batch_size):
        batch = generate_responses(model, tokenizer, texts[start:start + batch_size], max_new_tokens=MAX_NEW_TOKENS,
                                   max_prompt_tokens=MAX_PROMPT_TOKENS, greedy=greedy)
        replies += batch.texts
    rewards = boxed_answer(replies, [row["ground_truth"] for row in rows])
    return Accuracy(sum(rewards) / len(rows), sum(last_boxed(r) is not None for r in replies) / len(rows))
