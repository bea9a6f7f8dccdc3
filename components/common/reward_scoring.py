"""Scoring (prompt, response) texts with a trained reward model.

The reward model may use a different tokenizer than the policy, so it always scores decoded text,
formed exactly as TRL's RewardTrainer formed its training pairs: prompt + response + EOS.
"""

import torch

from components.common.models import Placement, load_tokenizer


def reward_model_text(prompt: str, response: str, eos_token: str) -> str:
    """The text the reward model was trained on for a (prompt, response) pair."""
    return f"{prompt}{response}{eos_token}"


class RewardScorer:
    """A frozen reward model that maps (prompt, response) texts to scalar rewards."""

    def __init__(self, source: str, placement: Placement, batch_size: int = 64, max_tokens: int = 1024):
        from transformers import AutoModelForSequenceClassification

        self.tokenizer = load_tokenizer(source, padding_side="right")
        self.tokenizer.truncation_side = "left"
        self.model = AutoModelForSequenceClassification.from_pretrained(source, dtype=placement.dtype)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(placement.device).eval()
        self.device = placement.device
        self.batch_size = batch_size
        # Never past the reward model's own position limit (512 for BERT, 1024 for GPT-2...).
        position_limit = getattr(self.model.config, "max_position_embeddings", None)
        self.max_tokens = min(max_tokens, position_limit) if position_limit else max_tokens

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """One float32 reward per pair, on the CPU."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        texts = [reward_model_text(p, r, self.tokenizer.eos_token) for p, r in zip(prompts, responses)]
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
