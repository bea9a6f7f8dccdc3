"""Prompts for the reinforcement-learning stage: read, validated, split, written in canonical form."""

from dataclasses import dataclass
from pathlib import Path

from components.common import defaults
from components.common.chat_templates import rendering_note, system_prompt_note
from components.common.data.lengths import TRUNCATE, load_model_tokenizer
from components.common.data.loading import DEFAULT_MAX_BAD_ROW_FRACTION, DataSettings
from components.common.data.preparation import PreparedData, describe_steps, prepare_prompts, write_prepared
from components.common.data.report import write_report
from components.common.steps import DEFAULT_BATCH_SIZE, prompts_per_rl_step, resolve_train_steps


@dataclass(frozen=True)
class PromptDataConfig:
    prompt_dataset: str
    eval_dataset: str | None = None
    instruction: str | None = None
    system_prompt: str | None = None  # the system message of every prompt that has none
    prompt_sequence_length: int = defaults.PROMPT_SEQUENCE_LENGTH
    batch_size: int = DEFAULT_BATCH_SIZE  # responses per RL step
    algorithm: str = defaults.ALGORITHM  # with num_generations: how many prompts one RL step takes
    num_generations: int = defaults.NUM_GENERATIONS
    reinforcement_learning_train_epochs: int = 1
    reinforcement_learning_train_steps: int = 0
    eval_split_fraction: float = defaults.EVAL_SPLIT_FRACTION
    max_eval_prompts: int = defaults.MAX_EVAL_PROMPTS
    seed: int = 0
    max_bad_row_fraction: float = DEFAULT_MAX_BAD_ROW_FRACTION
    length_policy: str = TRUNCATE
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE

    def settings(self) -> DataSettings:
        return DataSettings(instruction=self.instruction or None, prompt_sequence_length=self.prompt_sequence_length,
                            length_policy=self.length_policy, max_bad_row_fraction=self.max_bad_row_fraction,
                            system_prompt=self.system_prompt or None)


@dataclass(frozen=True)
class PromptDataResult:
    train_rows: int
    eval_rows: int
    reinforcement_learning_train_steps: int
    prepared: PreparedData


def run(config: PromptDataConfig, base_model_dir: str | None, output_dir: str | Path,
        report_path: str | Path) -> PromptDataResult:
    """Writes train.jsonl, eval.jsonl (at most max_eval_prompts), rejects.jsonl, accounting.json and the report."""
    settings = config.settings()
    length_tokenizer = load_model_tokenizer(base_model_dir)
    prepared = prepare_prompts(config.prompt_dataset, config.eval_dataset, settings, length_tokenizer.tokenizer,
                               config.eval_split_fraction, config.max_eval_prompts, config.seed)
    prepared.tokenizer_note = length_tokenizer.note
    prepared.notes.append(system_prompt_note(config.system_prompt, prepared.train + prepared.eval))
    prepared.notes.append(rendering_note(config.use_chat_template, length_tokenizer, prepared.train + prepared.eval))
    prompts_per_step = prompts_per_rl_step(config.batch_size, config.algorithm, config.num_generations)
    steps = resolve_train_steps(config.reinforcement_learning_train_steps, len(prepared.train),
                                config.reinforcement_learning_train_epochs, prompts_per_step)
    prepared.notes.append(describe_steps(
        "reinforcement_learning_train_steps", steps, config.reinforcement_learning_train_steps,
        len(prepared.train), prompts_per_step, config.reinforcement_learning_train_epochs))
    write_prepared(prepared, output_dir)
    write_report(prepared, report_path, config.prompt_sequence_length, settings.target_sequence_length)
    return PromptDataResult(len(prepared.train), len(prepared.eval), steps, prepared)
