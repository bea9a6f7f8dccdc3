"""Scoring (prompt, response) texts with a trained reward model.

The reward model may use a different tokenizer than the policy, so it always scores decoded text.
Training, the count of over-long training pairs and scoring all form that text with
`reward_model_text` (the prompt rendered the reward model's own way: its chat template or plain
text) and read at most `reward_model_token_budget` tokens of it, so every stage scores a pair
exactly as the reward model saw it in training.
"""

from collections.abc import Sequence

import torch

from components.common import defaults
from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.models import Placement, load_tokenizer


def reward_model_token_budget(prompt_tokens: int, response_tokens: int) -> int:
    """Longest text, in tokens, the reward model trains on or reads: a full prompt, a full response
    and the EOS after them. Every stage takes it from here, so none cuts a text another keeps whole."""
    return prompt_tokens + response_tokens + 1


def reward_model_text(prompt: Prompt, response: str, formatter: PromptFormatter) -> str:
    """The text the reward model reads for a (prompt, response) pair: prompt + response + EOS.

    The prompt and the response are rendered by the reward model's `formatter` (through its chat
    template when it uses one). A decoder reads its score at the last token, so the EOS marks
    where the response ended. An encoder (BERT, DeBERTa) has no EOS token: its tokenizer frames
    the text with its own special tokens ([CLS] ... [SEP]) and nothing is appended.
    """
    eos = formatter.tokenizer.eos_token or ""
    return f"{formatter.prompt(prompt)}{formatter.answer(response)}{eos}"


def reward_model_ids(prompt: Prompt, response: str, formatter: PromptFormatter) -> list[int]:
    """The token ids of `reward_model_text`, with the special tokens the tokenizer adds itself."""
    return formatter.tokenizer(reward_model_text(prompt, response, formatter))["input_ids"]


class RewardScorer:
    """A frozen reward model that maps (prompt, response) texts to scalar rewards."""

    def __init__(
        self,
        source: str,
        placement: Placement,
        batch_size: int = 64,
        max_tokens: int = 1024,
        use_chat_template: str = defaults.USE_CHAT_TEMPLATE,
    ):
        from transformers import AutoModelForSequenceClassification

        self.tokenizer = load_tokenizer(source, padding_side="right")
        self.tokenizer.truncation_side = "left"
        self.formatter = PromptFormatter(self.tokenizer, use_chat_template, source)
        self.model = AutoModelForSequenceClassification.from_pretrained(source, dtype=placement.dtype)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(placement.device).eval()
        self.device = placement.device
        self.batch_size = batch_size
        # Never past the reward model's own position limit (512 for BERT, 1024 for GPT-2...).
        position_limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_tokens = min(max_tokens, position_limit) if position_limit else max_tokens

    @torch.no_grad()
    def score(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> torch.Tensor:
        """One float32 reward per pair, on the CPU."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        texts = [reward_model_text(p, r, self.formatter) for p, r in zip(prompts, responses)]
        scores = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
            ).to(self.device)
            scores.append(self.model(**encoded).logits[:, 0].float().cpu())
        return torch.cat(scores) if scores else torch.zeros(0)
