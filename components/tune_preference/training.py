"""Preference tuning without a reward model: the policy learns from the pairs directly, with TRL's
DPOTrainer (loss -log sigmoid(beta x margin), `loss_type` picks TRL's variant) or KTOTrainer (each
answer on its own, desirable or undesirable, against KTO's reference point).

The output is a plain Hugging Face model directory (LoRA merged, tokenizer and generation config
saved), as PPO's; the metrics include the implicit-reward accuracy on the held-out pairs
(components/common/implicit_reward.py).
"""

from pathlib import Path

from components.common.canonical_data import PREFERENCE_FIELDS, read_canonical_rows
from components.common.chat_templates import PromptFormatter
from components.common.data.preparation import holds_data
from components.common.distributed import TrainingProcesses
from components.common.models import Placement, load_tokenizer, save_causal_lm
from components.common.trainer.checkpoints import run_trainer
from components.common.trainer.stage import finish_training, start_training
from components.common.canonical_data import read_preference_pairs
from components.common.implicit_reward import implicit_reward_accuracy
from components.tune_preference.config import PreferenceTuningConfig
from components.tune_preference.kto_rows import ClassBalance, unpaired_rows
from components.tune_preference.trainers import build_trainer, whole_policy
from components.tune_preference.trl_rows import dpo_rows, kto_rows


def training_rows(
    config: PreferenceTuningConfig, pairs: list[dict], formatter: PromptFormatter, processes: TrainingProcesses
) -> tuple[list[dict], dict[str, float]]:
    """The rows the trainer takes, and what the metrics say about them (KTO: its rows and class balance)."""
    if config.algorithm == "dpo":
        return dpo_rows(pairs, formatter, config.max_prompt_tokens, config.max_response_tokens), {}
    rows = unpaired_rows(pairs)
    balance = ClassBalance.of(rows, config.desirable_weight, config.undesirable_weight)
    if not balance.in_recommended_range and processes.is_main:
        print(balance.warning(), flush=True)
    tokenized = kto_rows(rows, formatter, config.max_prompt_tokens, config.max_response_tokens,
                         config.micro_batch_size(processes.count), config.seed)
    facts = {
        "desirable_rows": balance.desirable,
        "undesirable_rows": balance.undesirable,
        "kto_class_balance": balance.ratio,
        "kto_class_balance_in_range": float(balance.in_recommended_range),
    }
    return tokenized, facts


def train_preference_policy(
    config: PreferenceTuningConfig,
    policy_source: str,
    train_path: str | Path,
    eval_path: str | Path,
    output_dir: str | Path,
    log_dir: str | Path,
    placement: Placement | None = None,
    checkpoint_dir: str = "",
    checkpoint_interval_steps: int = 0,
) -> dict[str, float]:
    """Tune the policy at `policy_source` on the canonical pairs with DPO or KTO; save it as an HF directory.

    Returns the metrics a person reads: final train loss, the implicit-reward accuracy and margin on
    the held-out pairs (against the base policy), and for KTO its rows and class balance.

    With a `checkpoint_dir`, saves a checkpoint there about every `checkpoint_interval_steps` steps
    (0: about every 10% of them; see `checkpoint_interval`), resumes from the last one it finds, and
    deletes them at the end: a resumed run ends as an uninterrupted one would.

    Launched once per GPU (components.common.distributed), the Trainer trains with DDP, each
    process taking an equal share of every batch; the first process saves, evaluates and reports.
    """
    processes, placement = start_training(config, placement, log_dir)
    output_dir = Path(output_dir)

    tokenizer = load_tokenizer(policy_source, padding_side="right")
    formatter = PromptFormatter(tokenizer, config.use_chat_template, policy_source)
    pairs = read_canonical_rows(train_path, PREFERENCE_FIELDS, needed_for=f"{config.algorithm.upper()} training")
    rows, row_facts = training_rows(config, pairs, formatter, processes)

    result, logs, _ = run_trainer(
        lambda trainer_dir, callbacks, checkpoint_steps: build_trainer(
            config, policy_source, tokenizer, rows, trainer_dir, placement, processes, callbacks, checkpoint_steps
        ),
        lambda model: save_causal_lm(model, tokenizer, output_dir),
        stage=config.algorithm.upper(),
        steps=config.steps,
        logging_steps=config.logging_steps,
        trainer_dir=checkpoint_dir or output_dir / "_trainer",
        log_dir=log_dir,
        checkpoint_dir=checkpoint_dir,
        checkpoint_interval_steps=checkpoint_interval_steps,
        processes=processes,
        whole_model=lambda: whole_policy(config, policy_source, placement),
    )
    if not processes.is_main:
        return {}  # only the first process's result is reported

    eval_pairs = read_preference_pairs(eval_path) if holds_data(eval_path) else []
    implicit = implicit_reward_accuracy(
        str(output_dir), policy_source, eval_pairs, placement, config.use_chat_template,
        config.max_prompt_tokens, config.max_response_tokens, config.eval_batch_size, config.seed,
    )
    logs.writer.add_scalar("eval_implicit_reward_accuracy", implicit["implicit_reward_accuracy"], config.steps)
    logs.writer.add_scalar("eval_implicit_reward_margin", implicit["implicit_reward_margin"], config.steps)
    finish_training(logs, checkpoint_dir)
    return {
        "train_loss": float(result.training_loss),
        "eval_implicit_reward_accuracy": implicit["implicit_reward_accuracy"],
        "eval_implicit_reward_accuracy_ci_low": implicit["implicit_reward_accuracy_ci"][0],
        "eval_implicit_reward_accuracy_ci_high": implicit["implicit_reward_accuracy_ci"][1],
        "eval_implicit_reward_margin": implicit["implicit_reward_margin"],
        "eval_pairs": implicit["implicit_reward_pairs"],
        "train_pairs": len(pairs),
        **row_facts,
        "train_steps": config.steps,
        "learning_rate": config.learning_rate,
        "beta": config.beta,
    }
