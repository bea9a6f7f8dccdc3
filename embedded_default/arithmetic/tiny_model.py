r"""The built-in chat model `builtin:tiny-arithmetic`, built offline in about a minute on one CPU core.

`build_tiny_arithmetic_model(output_dir)`:
1. builds a word-level tokenizer over the task's whole vocabulary (every word and punctuation mark of
   the templates, the numbers 0..MAX_NUMBER as single tokens), with special tokens for the turns of
   a simple chat template (system/user/assistant, each turn ended by `<|end|>`, which is also EOS;
   `<pad>` is a separate token) and `add_generation_prompt`;
2. builds a tiny Llama causal LM from a config (random weights, seeded; the sizes of tiny-summarizer);
3. warms it up with a short supervised pass on (prompt rendered with the chat template -> reply)
   pairs: the reply "The answer is \boxed{N}." with the right N of every preference row's problem, and
   for every second row also its rejected reply, a plausible mistake (an operand copied, the wrong
   operation, off by one or two), as supervised data written by people holds mistakes. The reply
   format is learnt in a few dozen steps, the arithmetic only in part: after 800 steps the model's
   greedy answer is right on about 45% of held-out problems, a sampled one on about 22%, since
   sampling also gives the mistakes their learnt share. That is the room GRPO with the `boxed-answer`
   reward has on this task: it learns to avoid the mistakes the model already makes (sampled accuracy
   rises to about 40%), more than it teaches new sums (greedy accuracy barely moves);
4. saves model, generation config and tokenizer (chat template included) with `save_pretrained`.

Decoding a generated reply gives back exactly the text the model was taught ("\boxed{7}" and all),
so that `components.common.data.answers.last_boxed` reads it.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from embedded_default.arithmetic import PREFERENCE_FILE
from embedded_default.arithmetic.generate import CONTAINERS, FRIENDS, ITEMS, NAMES, SYSTEM_PROMPT, TEMPLATES
from embedded_default.tiny_model import (
    BuiltModel,
    TinyModelConfig,
    build_model,
    save_built_model,
    supervised_example,
    supervised_warmup,
)

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "<|end|>"  # ends every turn: generation stops at the end of the assistant's turn
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS.values())
MAX_NUMBER = 100  # numbers 0..MAX_NUMBER are single tokens
SPACE = "\u2581"  # the Metaspace marker of a word that followed a space
SPLIT_PATTERN = rf"[^\w{SPACE}]|\d+"  # punctuation, backslashes, braces, newlines and numbers are tokens of their own
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ArithmeticModelConfig(TinyModelConfig):
    """The tiny-summarizer's sizes with the arithmetic task's warm-up: about a minute on one CPU core."""

    vocab_size: int = 0  # set by the word-level vocabulary
    warmup_steps: int = 800
    warmup_batch_size: int = 32
    learning_rate: float = 3e-3
    mistake_every: int = 2  # every second problem is also taught with its rejected (wrong) reply; 0: never


def task_texts() -> list[str]:
    """Texts that hold every word of the task: the templates filled with every name, item, number..."""
    texts = [SYSTEM_PROMPT, r"The answer is \boxed{0}.", " ".join(str(n) for n in range(MAX_NUMBER + 1))]
    fillers = {"name": " ".join(n for n, _ in NAMES), "pronoun": "he she", "Pronoun": "He She",
               "items": " ".join(ITEMS), "container": " ".join(CONTAINERS), "friend": " ".join(FRIENDS),
               "a": "1", "b": "2"}
    texts += [template.format(**fillers) for _, template in TEMPLATES]
    return texts


def pre_tokenize(text: str) -> list[str]:
    """The word-level pieces of a text, as the tokenizer splits it (for building the vocabulary)."""
    return [piece for piece, _ in _pre_tokenizer().pre_tokenize_str(text)]


def _pre_tokenizer():
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never"),
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
    ])


def build_tokenizer(texts: list[str]):
    """A word-level tokenizer whose vocabulary is every piece of `texts` (and of each text after a
    space, since a word that follows a space is a different piece), with the chat template."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    pieces: set[str] = set()
    for text in texts:
        for variant in (text, " " + text, text.replace(" ", "\n")):
            pieces.update(pre_tokenize(variant))
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for piece in sorted(pieces):
        vocab.setdefault(piece, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="never")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, bos_token=BOS_TOKEN, unk_token=UNK_TOKEN,
        additional_special_tokens=list(ROLE_TOKENS.values()),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def read_preference_rows(path: str | Path = PREFERENCE_FILE) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def warmup_pairs(rows: list[dict], mistake_every: int) -> list[tuple[list[dict], str]]:
    """(conversation, reply): the right answer of every preference row and, when `mistake_every` is set,
    the wrong one of every `mistake_every`-th row too."""
    pairs = []
    for index, row in enumerate(rows):
        pairs.append((row["prompt"], row["chosen"][-1]["content"]))
        if mistake_every and index % mistake_every == 0:
            pairs.append((row["prompt"], row["rejected"][-1]["content"]))
    return pairs


def encode_pairs(tokenizer, pairs: list[tuple[list[dict], str]]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per pair: the templated prompt (generation prompt included) + reply + EOS;
    labels mask the prompt. The prompt is encoded as the pipeline encodes it."""
    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m, _ in pairs]
    prompt_ids = tokenizer(prompts)["input_ids"]
    reply_ids = tokenizer([reply for _, reply in pairs], add_special_tokens=False)["input_ids"]
    return [supervised_example(ids, reply, tokenizer.eos_token_id) for ids, reply in zip(prompt_ids, reply_ids)]


def build_tiny_arithmetic_model(
    output_dir: str | Path,
    seed: int = 0,
    progress: bool = True,
    config: ArithmeticModelConfig = ArithmeticModelConfig(),
    preference_file: str | Path = PREFERENCE_FILE,
) -> Path:
    """Build, warm up and save the tiny arithmetic chat model into `output_dir`; returns the directory."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(task_texts())
    model = build_model(tokenizer, config)
    examples = encode_pairs(tokenizer, warmup_pairs(read_preference_rows(preference_file), config.mistake_every))
    final_loss = supervised_warmup(model, examples, tokenizer.pad_token_id, config, seed, progress)

    build = BuiltModel(model, tokenizer, len(examples), final_loss, started, seed, config)
    return save_built_model(build, output_dir, "tiny arithmetic model", progress)
