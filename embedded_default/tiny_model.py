"""The built-in base model `builtin:tiny-summarizer`, built offline in well under a minute on a CPU.

`build_tiny_model(output_dir)`:
1. trains a small byte-level BPE tokenizer on the sample task's texts;
2. builds a tiny Llama causal LM from a config (random weights, seeded);
3. warms it up with a short supervised pass on (prompt -> summary) pairs taken from BOTH
   candidates of the preference data, so that it writes on-task summaries of mixed quality
   (the good, rambling, vague and wrong-key-fact summaries the data holds), leaving room for RLHF;
4. saves model, generation config and tokenizer with `save_pretrained`, so that
   `AutoModelForCausalLM.from_pretrained(output_dir)` and `AutoTokenizer.from_pretrained(output_dir)`
   load it like any Hugging Face checkpoint.

The warm-up sees prompts exactly as the pipeline forms them (`apply_instruction(input_text,
instruction)` with the sample task's instruction), the response tokens right after the prompt
tokens, then EOS; the loss covers the response and EOS only.
"""

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from components.common.prompts import apply_instruction
from embedded_default import PREFERENCE_FILE, load_params

PAD_TOKEN = "<pad>"
EOS_TOKEN = "</s>"
BOS_TOKEN = "<s>"
IGNORE_INDEX = -100
BUILD_REPORT_FILE = "tiny_model_build.json"  # what was built, how, and how long it took


@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes and warm-up settings of the built-in model; defaults fit ~30 s on 2 CPU cores."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 256
    warmup_steps: int = 300
    warmup_batch_size: int = 32
    learning_rate: float = 3e-3
    lr_warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0


def _read_preference_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def warmup_pairs(rows: list[dict], instruction: str | None) -> list[tuple[str, str]]:
    """(prompt, response) for both candidates of every preference row, prompts as the pipeline forms them."""
    pairs = []
    for row in rows:
        prompt = apply_instruction(row["input_text"], instruction)
        pairs.append((prompt, row["candidate_0"]))
        pairs.append((prompt, row["candidate_1"]))
    return pairs


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN, BOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, bos_token=BOS_TOKEN
    )


def architecture(config: TinyModelConfig, vocab_size: int) -> dict:
    """The LlamaConfig values that size the tiny model (config.json's, without the token ids)."""
    return dict(
        model_type="llama",
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
    )


def build_model(tokenizer, config: TinyModelConfig):
    """A randomly initialised tiny Llama whose special-token ids match `tokenizer`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    sizes = {name: value for name, value in architecture(config, len(tokenizer)).items() if name != "model_type"}
    model_config = LlamaConfig(
        **sizes,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = LlamaForCausalLM(model_config)
    generation = model.generation_config
    generation.pad_token_id = tokenizer.pad_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    generation.bos_token_id = tokenizer.bos_token_id
    return model


def supervised_example(
    prompt_ids: list[int], response_ids: list[int], eos_token_id: int
) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one warm-up example: prompt + response + EOS, the prompt masked out of the labels."""
    target = response_ids + [eos_token_id]
    return prompt_ids + target, [IGNORE_INDEX] * len(prompt_ids) + target


def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per pair: prompt ids + response ids + EOS; labels mask the prompt."""
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    responses = tokenizer([r for _, r in pairs], add_special_tokens=False)["input_ids"]
    return [supervised_example(p, r, tokenizer.eos_token_id) for p, r in zip(prompts, responses)]


def _collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id)
    labels = torch.full((len(examples), width), IGNORE_INDEX)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = torch.tensor(row_labels)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def response_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (response + EOS) positions.

    The LM head runs on those positions only: prompts are most of the tokens, and projecting
    them onto the vocabulary would be wasted work.
    """
    hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    predicting = targets != IGNORE_INDEX
    logits = model.lm_head(hidden[:, :-1][predicting])
    return torch.nn.functional.cross_entropy(logits, targets[predicting])


def supervised_warmup(model, examples, pad_id: int, config: TinyModelConfig, seed: int, progress: bool) -> float:
    """Short supervised pass over shuffled `examples`; returns the mean loss of the last 10% of steps."""
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    rng = random.Random(seed)
    order: list[int] = []
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = get_cosine_schedule_with_warmup(
        optimizer, max(1, int(config.lr_warmup_fraction * config.warmup_steps)), config.warmup_steps
    )
    model.train()
    losses = []
    bar = tqdm(range(config.warmup_steps), desc="tiny model warm-up", disable=not progress)
    for _ in bar:
        if len(order) < config.warmup_batch_size:
            refill = list(range(len(examples)))
            rng.shuffle(refill)
            order += refill
        batch = _collate([examples[i] for i in order[: config.warmup_batch_size]], pad_id)
        del order[: config.warmup_batch_size]
        loss = response_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return sum(tail) / len(tail)


def build_tiny_model(
    output_dir: str | Path,
    seed: int = 0,
    progress: bool = True,
    config: TinyModelConfig = TinyModelConfig(),
    preference_file: str | Path = PREFERENCE_FILE,
    instruction: str | None = None,
) -> Path:
    """Build, warm up and save the tiny summarizer into `output_dir`; returns the directory.

    `instruction` defaults to the sample task's (embedded_default/params.yaml): the model learns
    to answer prompts formed with it.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    if instruction is None:
        instruction = load_params()["instruction"]
    pairs = warmup_pairs(_read_preference_rows(Path(preference_file)), instruction)
    corpus = sorted({text for pair in pairs for text in pair})
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    model = build_model(tokenizer, config)
    examples = encode_pairs(tokenizer, pairs)
    final_loss = supervised_warmup(model, examples, tokenizer.pad_token_id, config, seed, progress)

    build = BuiltModel(model, tokenizer, len(examples), final_loss, started, seed, config)
    return save_built_model(build, output_dir, "tiny summarizer", progress, instruction=instruction)


@dataclass
class BuiltModel:
    """A tiny model right after its warm-up, with what its build report records."""

    model: object
    tokenizer: object
    warmup_examples: int
    final_loss: float
    started: float  # time.perf_counter() when the build began
    seed: int
    config: TinyModelConfig


def save_built_model(build: BuiltModel, output_dir: str | Path, name: str, progress: bool, **details) -> Path:
    """Save the model and tokenizer into `output_dir` with the build report (`details` added to it)."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    build.model.save_pretrained(directory)
    build.tokenizer.save_pretrained(directory)
    report = {
        "parameters": sum(p.numel() for p in build.model.parameters()),
        "vocab_size": len(build.tokenizer),
        "warmup_examples": build.warmup_examples,
        "final_warmup_loss": round(build.final_loss, 4),
        "seconds": round(time.perf_counter() - build.started, 1),
        "seed": build.seed,
        **details,
        "config": asdict(build.config),
    }
    (directory / BUILD_REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if progress:
        print(f"built the {name} in {directory}: {report['parameters']} parameters, "
              f"warm-up loss {report['final_warmup_loss']}, {report['seconds']} s")
    return directory
