"""Supervised fine-tuning with TRL's SFTTrainer: the mean cross-entropy of the completions' tokens
(EOS included) given their prompts; prompt tokens carry no loss.

Every weight is trained (no LoRA) and held in float32; on CUDA the trainer runs forward passes under
bf16 autocast, so AdamW never updates bf16 weights. The result is saved in float32 as a plain Hugging
Face model directory (config, generation config, tokenizer), the base of every later stage.
"""

import tempfile
from pathlib import Path

import torch
from trl import SFTTrainer

from components.common.canonical_data import read_canonical_rows
from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.models import Placement, load_tokenizer
from components.common.trainer.arguments import training_arguments
from components.common.trainer.checkpoints import run_trainer
from components.common.trainer.sharding import ShardedTraining
from components.common.trainer.stage import finish_training, start_training
from components.supervised_fine_tuning.config import SupervisedTrainingConfig
from components.supervised_fine_tuning.data import SFT_FIELDS
from components.supervised_fine_tuning.tokenization import SupervisedIds, supervised_ids


def tokenized_examples(
    rows: list[dict], formatter: PromptFormatter, config: SupervisedTrainingConfig
) -> list[SupervisedIds]:
    """The canonical rows ({"prompt", "completion"[, "prompt_messages"]}) as the model trains on them."""
    return supervised_ids([Prompt.from_row(row) for row in rows], [row["completion"] for row in rows], formatter,
                          config.max_prompt_tokens, config.max_completion_tokens)


def model_to_train(base_source: str):
    """The model as training starts (and an unsharded copy to gather trained weights into): float32."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32)


class SupervisedTrainer(ShardedTraining, SFTTrainer):
    pass


def build_trainer(
    config: SupervisedTrainingConfig,
    base_source: str,
    tokenizer,
    examples: list[SupervisedIds],
    trainer_dir: Path,
    placement: Placement,
    processes: TrainingProcesses,
    callbacks: list,
    checkpoint_steps: int = 0,
):
    """TRL's SFTTrainer on the tokenized `examples`, loss on their completions only.

    With `checkpoint_steps`, it saves a checkpoint every that many steps in `trainer_dir`.
    """
    from datasets import Dataset
    from trl import SFTConfig

    model = model_to_train(base_source)
    steps = config.steps(len(examples))
    args = SFTConfig(
        **training_arguments(config, steps, trainer_dir, placement, processes, checkpoint_steps, model),
        gradient_checkpointing=True,  # TRL's default: memory for compute
        completion_only_loss=True,  # labels from each row's completion_mask
        max_length=None,  # the examples are already cut to the prompt and completion budgets
        # The Trainer writes this into the model's config, saved with it; SFTTrainer turns the KV cache
        # off in its own forward passes.
        use_cache=model.config.use_cache,
    )
    return SupervisedTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([example.to_trl() for example in examples]),
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def save_model(model, tokenizer, output_dir: Path) -> None:
    """The trained model as a plain Hugging Face directory, in float32."""
    model.to(device="cpu", dtype=torch.float32).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def train_supervised(
    config: SupervisedTrainingConfig,
    base_source: str,
    rows_path: str | Path,
    output_dir: str | Path,
    log_dir: str | Path,
    placement: Placement | None = None,
    checkpoint_dir: str = "",
    checkpoint_interval_steps: int = 0,
) -> dict[str, float]:
    """Fine-tune `base_source` on the canonical rows of `rows_path` (components.supervised_fine_tuning.data)
    for ceil(rows / batch_size) * epochs steps; save it as an HF directory in `output_dir`.

    Returns the final train loss, the step count and how many prompts and completions were cut to
    their budgets.

    With a `checkpoint_dir`, saves a checkpoint there about every `checkpoint_interval_steps` steps
    (0: about every 10% of them; see `checkpoint_interval`), resumes from the last one it finds, and
    deletes them at the end: a resumed run ends as an uninterrupted one would.

    Launched once per GPU (components.common.distributed), the Trainer trains with DDP, each
    process taking an equal share of every batch; the first process saves and reports.
    """
    processes, placement = start_training(config, placement, log_dir)
    output_dir = Path(output_dir)

    tokenizer = load_tokenizer(base_source, padding_side="right")
    formatter = PromptFormatter(tokenizer, config.use_chat_template, base_source)
    rows = read_canonical_rows(rows_path, SFT_FIELDS, needed_for="supervised fine-tuning")
    examples = tokenized_examples(rows, formatter, config)
    steps = config.steps(len(examples))
    with tempfile.TemporaryDirectory(prefix="sft-trainer-") as scratch:  # the Trainer's folder when it saves nothing
        result, logs, history = run_trainer(
            lambda trainer_dir, callbacks, checkpoint_steps: build_trainer(
                config, base_source, tokenizer, examples, trainer_dir, placement, processes, callbacks,
                checkpoint_steps,
            ),
            lambda model: save_model(model, tokenizer, output_dir),
            stage="supervised fine-tuning",
            steps=steps,
            logging_steps=config.logging_steps,
            trainer_dir=checkpoint_dir or scratch,
            log_dir=log_dir,
            checkpoint_dir=checkpoint_dir,
            checkpoint_interval_steps=checkpoint_interval_steps,
            processes=processes,
            whole_model=lambda: model_to_train(base_source),
        )
    if not processes.is_main:
        return {}  # only the first process's result is reported
    accuracy = [logged["mean_token_accuracy"] for logged in history if "mean_token_accuracy" in logged]
    finish_training(logs, checkpoint_dir)
    return {
        "train_loss": float(result.training_loss),
        "mean_token_accuracy_end": accuracy[-1] if accuracy else float("nan"),
        "train_steps": steps,
        "completion_tokens": sum(sum(example.completion_mask) for example in examples),
        "truncated_prompts": sum(example.prompt_truncated for example in examples),
        "truncated_completions": sum(example.completion_truncated for example in examples),
        "epochs": config.epochs,
        "learning_rate": config.learning_rate,
    }
