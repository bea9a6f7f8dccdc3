"""Reward-model training with TRL's RewardTrainer: loss -log sigmoid(r(x, y_w) - r(x, y_l)).

Precision: trainable weights (LoRA adapters and the `score` head, or the whole model when
`lora_rank` is 0) are held in float32; frozen weights in the placement's dtype (bf16 on CUDA). The
trainer runs forward passes under bf16 autocast there, so AdamW never updates bf16 weights.
"""

import math
from pathlib import Path

import torch
from trl import RewardConfig, RewardTrainer

from components.common.canonical_data import PREFERENCE_FIELDS, read_canonical_rows
from components.common.chat_templates import PromptFormatter
from components.common.data.preparation import holds_data
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.errors import UserInputError
from components.common.models import Placement, load_tokenizer, weights_dtype
from components.common.reward_scoring import RewardScorer, reward_model_ids
from components.common.trainer.arguments import training_arguments
from components.common.trainer.checkpoints import run_trainer
from components.common.trainer.sharding import ShardedTraining, with_adapters
from components.common.trainer.stage import finish_training, start_training
from components.train_reward_model.config import RewardTrainingConfig

RANK_LOSS_TAG = "rank_loss"  # the tag Vertex's reward trainer writes
SIDES = ("chosen", "rejected")


def tokenized_pairs(pairs: list[dict], formatter: PromptFormatter, with_margin: bool) -> list[dict]:
    """The pairs as TRL trains on them: `chosen_ids` and `rejected_ids` (and `margin` when asked).

    Handing TRL token ids, not texts, keeps it from forming the text itself (it appends
    `tokenizer.eos_token`, which an encoder such as BERT does not have): the reward model trains on
    exactly the tokens `RewardScorer` gives it later.
    """
    rows = []
    for pair in pairs:
        prompt = Prompt.from_row(pair)
        row = {f"{side}_ids": reward_model_ids(prompt, pair[side], formatter) for side in SIDES}
        if with_margin:
            row["margin"] = pair["margin"]
        rows.append(row)
    return rows


def count_overlength_pairs(rows: list[dict], max_length: int) -> int:
    """Tokenized pairs TRL drops: either side longer than max_length tokens."""
    return sum(max(len(row["chosen_ids"]), len(row["rejected_ids"])) > max_length for row in rows)


def pairwise_accuracy(scorer: RewardScorer, pairs: list[dict]) -> tuple[float, float]:
    """Share of pairs where r(chosen) > r(rejected), and the mean r(chosen) - r(rejected)."""
    if not pairs:
        return math.nan, math.nan
    prompts = [Prompt.from_row(p) for p in pairs]
    chosen = scorer.score(prompts, [p["chosen"] for p in pairs])
    rejected = scorer.score(prompts, [p["rejected"] for p in pairs])
    return (chosen > rejected).float().mean().item(), (chosen - rejected).mean().item()


def keep_trainable_weights_in_float32(model: torch.nn.Module) -> None:
    """Upcast every trainable weight to float32: peft creates LoRA adapters in float32 but copies
    the classification head it trains (modules_to_save: `score`, BERT's `classifier`) in the base
    model's dtype."""
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()


def reward_model(config: RewardTrainingConfig, base_source: str, tokenizer, placement: Placement):
    """The reward model as training starts: `base_source` with a new one-output `score` head."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base_source, num_labels=1, dtype=weights_dtype(placement, config.lora_rank)
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def adapters(config: RewardTrainingConfig):
    """The LoRA adapters trained (with the `score` head), or None when every weight is."""
    from peft import LoraConfig

    if config.lora_rank == 0:
        return None
    return LoraConfig(
        task_type="SEQ_CLS",
        r=config.lora_rank,
        lora_alpha=2 * config.lora_rank,
        target_modules="all-linear",
        modules_to_save=["score"],
    )


class RewardModelTrainer(ShardedTraining, RewardTrainer):
    pass


def build_trainer(
    config: RewardTrainingConfig,
    base_source: str,
    tokenizer,
    rows: list[dict],
    trainer_dir: Path,
    placement: Placement,
    processes: TrainingProcesses,
    callbacks: list,
    checkpoint_steps: int = 0,
):
    """TRL's RewardTrainer on the tokenized pairs `rows`, every trainable weight in float32.

    With `checkpoint_steps`, it saves a checkpoint every that many steps in `trainer_dir`.
    """
    from datasets import Dataset

    model = reward_model(config, base_source, tokenizer, placement)
    args = RewardConfig(
        **training_arguments(config, config.steps, trainer_dir, placement, processes, checkpoint_steps, model),
        max_length=config.max_length,
        center_rewards_coefficient=config.center_rewards_coefficient or None,  # TRL's "off" is None
    )
    trainer = RewardModelTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=adapters(config),
        callbacks=callbacks,
    )
    keep_trainable_weights_in_float32(trainer.model)  # before train() builds the optimizer
    return trainer


def save_reward_model(model, tokenizer, output_dir: Path, lora_rank: int, placement: Placement) -> None:
    """The trained reward model as a plain Hugging Face directory: LoRA merged, in the placement's dtype
    (the one every stage loads it in)."""
    if lora_rank > 0:
        model = model.merge_and_unload()
    model.to(placement.dtype).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def train_reward_model(
    config: RewardTrainingConfig,
    base_source: str,
    train_path: str | Path,
    eval_path: str | Path,
    output_dir: str | Path,
    log_dir: str | Path,
    placement: Placement | None = None,
    checkpoint_dir: str = "",
    checkpoint_interval_steps: int = 0,
) -> dict[str, float]:
    """Train a reward model from `base_source` on the canonical pairs; save it as an HF directory.

    Returns the metrics a person reads: final train loss, eval pairwise accuracy and margin,
    and how many pairs were too long to use.

    With a `checkpoint_dir`, saves a checkpoint there about every `checkpoint_interval_steps` steps
    (0: about every 10% of them; see `checkpoint_interval`), resumes from the last one it finds, and
    deletes them at the end: a resumed run ends as an uninterrupted one would.

    Launched once per GPU (components.common.distributed), the Trainer trains with DDP, each
    process taking an equal share of every batch; the first process saves, evaluates and reports.
    """
    processes, placement = start_training(config, placement, log_dir)
    output_dir = Path(output_dir)

    tokenizer = load_tokenizer(base_source, padding_side="right")

    train_pairs = read_canonical_rows(train_path, PREFERENCE_FIELDS, needed_for="reward-model training")
    if config.use_margin:
        missing = sum("margin" not in pair for pair in train_pairs)
        if missing:
            raise UserInputError(
                f"use_margin is on but {missing} of {len(train_pairs)} training pairs have no margin; "
                "margins come from scored pairs (score_chosen/score_rejected or margin) and rankings by score"
            )
    formatter = PromptFormatter(tokenizer, config.use_chat_template, base_source)
    rows = tokenized_pairs(train_pairs, formatter, config.use_margin)
    overlength = count_overlength_pairs(rows, config.max_length)
    result, logs, _ = run_trainer(
        lambda trainer_dir, callbacks, checkpoint_steps: build_trainer(
            config, base_source, tokenizer, rows, trainer_dir, placement, processes, callbacks, checkpoint_steps
        ),
        lambda model: save_reward_model(model, tokenizer, output_dir, config.lora_rank, placement),
        stage="reward-model training",
        steps=config.steps,
        logging_steps=config.logging_steps,
        trainer_dir=checkpoint_dir or output_dir / "_trainer",
        log_dir=log_dir,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval_steps=checkpoint_interval_steps,
        processes=processes,
        whole_model=lambda: with_adapters(reward_model(config, base_source, tokenizer, placement), adapters(config)),
        renamed_tags={"loss": RANK_LOSS_TAG},
    )
    if not processes.is_main:
        return {}  # only the first process's result is reported

    scorer = RewardScorer(
        str(output_dir),
        placement,
        batch_size=config.eval_batch_size,
        max_tokens=config.max_length,
        use_chat_template=config.use_chat_template,
    )
    eval_pairs = (
        read_canonical_rows(eval_path, PREFERENCE_FIELDS, needed_for="reward-model evaluation")
        if holds_data(eval_path)
        else []
    )
    accuracy, margin = pairwise_accuracy(scorer, eval_pairs)
    logs.writer.add_scalar("eval_accuracy", accuracy, config.steps)
    logs.writer.add_scalar("eval_margin", margin, config.steps)
    finish_training(logs, checkpoint_dir)
    return {
        "train_loss": float(result.training_loss),
        "eval_accuracy": accuracy,
        "eval_margin": margin,
        "eval_pairs": len(eval_pairs),
        "train_pairs": len(train_pairs),
        "overlength_pairs_dropped": overlength,
        "train_steps": config.steps,
        "margin_in_loss": float(config.use_margin),
        "learning_rate": config.learning_rate,
    }
