"""Tiny models built offline for tests: a word-level tokenizer and small Llama models."""

from pathlib import Path

WORDS = (
    "the cat dog sat ran on mat park good bad short long summary post about my i a is was "
    "and it to of in day today happy sad [summary]: yes no"
).split()
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>"]


def build_tokenizer(directory: Path):
    """A word-level tokenizer over WORDS with pad/unk/bos/eos, saved to `directory`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_causal_lm(directory: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """A randomly initialised 1-layer Llama causal LM with its tokenizer, saved to `directory`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    return directory
