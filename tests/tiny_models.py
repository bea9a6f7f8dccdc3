"""Tiny models built offline for tests: a word-level tokenizer, small Llama models, a GPT-2
reward model whose score is a known function of the text's length, and a BERT encoder whose
tokenizer, like every BERT's, has no EOS token."""

from pathlib import Path

WORDS = (
    "the cat dog sat ran on mat park good bad short long summary post about my i a is was "
    "and it to of in day today happy sad [summary]: yes no"
).split()
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>"]
# Prompts the policy tests sample from: every word is in WORDS.
PROMPTS = [
    "summary about my cat [summary]:",
    "the dog ran in the park [summary]:",
    "i was happy today [summary]:",
    "a short post [summary]:",
    "my day was good and the cat sat on the mat [summary]:",
]


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


def tiny_shape(hidden_size: int) -> dict:
    """The size settings every tiny test model shares: one layer, two heads, 128 positions."""
    return dict(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=128,
    )


def build_causal_lm(directory: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """A randomly initialised 1-layer Llama causal LM with its tokenizer, saved to `directory`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **tiny_shape(hidden_size),
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    return directory


# The length reward model's score of a text of n tokens: RM_WEIGHT * f((RM_CENTER - n) / RM_SCALE)
# with f(a) = sqrt(2) a / sqrt(a^2 + 1), steepest (about 0.35 a token) around RM_CENTER tokens.
RM_CENTER, RM_SCALE, RM_WEIGHT = 16, 8.0, 2.0


def length_score(tokens):
    """The score of `build_length_reward_model` for a text of `tokens` tokens (before layer-norm eps)."""
    import torch

    a = (RM_CENTER - tokens.float()) / RM_SCALE
    return RM_WEIGHT * a / torch.sqrt((a**2 + 1) / 2)


def build_length_reward_model(directory: Path, max_positions: int = 128) -> Path:
    """A GPT-2 reward model scoring `length_score(number of tokens)`: shorter texts score higher.

    Its attention and MLP outputs are zeroed, so the score depends only on the position of the
    last token, and its position embeddings make it fall with the length of prompt + response.
    """
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=4, n_layer=1, n_head=1, n_positions=max_positions, num_labels=1,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = GPT2ForSequenceClassification(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for norm in (model.transformer.h[0].ln_1, model.transformer.h[0].ln_2, model.transformer.ln_f):
            norm.weight.fill_(1.0)
        a = (RM_CENTER - 1 - torch.arange(max_positions, dtype=torch.float32)) / RM_SCALE  # last token at n - 1
        ones = torch.ones_like(a)
        # After layer norm, feature 0 of [a, 1, -1, -a] is a / sqrt((a^2 + 1) / 2): monotone in a.
        model.transformer.wpe.weight.copy_(torch.stack([a, ones, -ones, -a], dim=1))
        model.score.weight.copy_(torch.tensor([[RM_WEIGHT, 0.0, 0.0, 0.0]]))
    model.save_pretrained(directory)
    return directory


BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_bert_tokenizer(directory: Path):
    """A BERT WordPiece tokenizer over WORDS ([CLS] text [SEP], no EOS token), saved to `directory`.

    BERT's pre-tokenizer splits punctuation, so "[summary]:" is read as "[", "summary", "]", ":".
    """
    from transformers import BertTokenizer

    words = [w for w in WORDS if w != "[summary]:"] + ["[", "]", ":"]
    tokenizer = BertTokenizer(vocab={token: index for index, token in enumerate(BERT_SPECIAL_TOKENS + words)})
    tokenizer.save_pretrained(directory)
    return tokenizer


def build_bert_classifier(directory: Path, seed: int = 0, hidden_size: int = 32) -> Path:
    """A randomly initialised 1-layer BertForSequenceClassification (one label) with its
    tokenizer, saved to `directory`."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_bert_tokenizer(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        **tiny_shape(hidden_size),
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory
