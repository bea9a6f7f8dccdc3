"""Preference pairs for the reward model and DPO/KTO: read, validated, split, written in canonical form."""

from dataclasses import dataclass
from pathlib import Path

from components.common import defaults
from components.common.algorithms import OFFLINE_ALGORITHMS
from components.common.chat_templates import rendering_note, system_prompt_note
from components.common.data.formats import AUTO
from components.common.data.lengths import TRUNCATE, load_model_tokenizer
from components.common.data.loading import DEFAULT_MAX_BAD_ROW_FRACTION, DataSettings
from components.common.data.preparation import (
    EVAL_FILE,
    TRAIN_FILE,
    PreparedData,
    describe_steps,
    prepare_preferences,
    write_prepared,
)
from components.common.data.report import write_report
from components.common.steps import DEFAULT_BATCH_SIZE, resolve_train_steps


@dataclass(frozen=True)
class PreferenceDataConfig:
    preference_dataset: str
    eval_dataset: str | None = None
    instruction: str | None = None
    system_prompt: str | None = None  # the system message of every prompt that has none
    prompt_sequence_length: int = defaults.PROMPT_SEQUENCE_LENGTH
    target_sequence_length: int = defaults.TARGET_SEQUENCE_LENGTH
    batch_size: int = DEFAULT_BATCH_SIZE
    reward_model_train_epochs: int = 1
    reward_model_train_steps: int = 0
    # DPO/KTO tune the policy on the pairs: their steps derive from the pairs like the reward model's.
    algorithm: str = defaults.ALGORITHM
    reinforcement_learning_train_epochs: int = 1
    reinforcement_learning_train_steps: int = 0
    eval_split_fraction: float = defaults.EVAL_SPLIT_FRACTION
    seed: int = 0
    max_bad_row_fraction: float = DEFAULT_MAX_BAD_ROW_FRACTION
    length_policy: str = TRUNCATE
    dataset_format: str = AUTO
    use_chat_template: str = defaults.USE_CHAT_TEMPLATE

    def settings(self) -> DataSettings:
        return DataSettings(self.dataset_format, self.instruction or None, self.prompt_sequence_length,
                            self.target_sequence_length, self.length_policy, self.max_bad_row_fraction,
                            self.system_prompt or None)


@dataclass(frozen=True)
class PreferenceDataResult:
    train_rows: int
    eval_rows: int
    reward_model_train_steps: int
    preference_tuning_train_steps: int
    prepared: PreparedData | None  # None: no preference dataset was given


def run(config: PreferenceDataConfig, base_model_dir: str | None, output_dir: str | Path,
        report_path: str | Path) -> PreferenceDataResult:
    """Writes train.jsonl, eval.jsonl, rejects.jsonl, accounting.json to `output_dir` and the report.

    An empty preference_dataset (online RL with a rule reward alone) writes empty train and eval files
    and a report that says so.
    """
    if not config.preference_dataset.strip():
        return _no_preference_data(output_dir, report_path)
    settings = config.settings()
    length_tokenizer = load_model_tokenizer(base_model_dir)
    prepared = prepare_preferences(config.preference_dataset, config.eval_dataset, settings,
                                   length_tokenizer.tokenizer, config.eval_split_fraction, config.seed)
    prepared.tokenizer_note = length_tokenizer.note
    prepared.notes.append(system_prompt_note(config.system_prompt, prepared.train + prepared.eval))
    prepared.notes.append(rendering_note(config.use_chat_template, length_tokenizer, prepared.train + prepared.eval))
    steps = resolve_train_steps(config.reward_model_train_steps, len(prepared.train),
                                config.reward_model_train_epochs, config.batch_size)
    prepared.notes.append(describe_steps(
        "reward_model_train_steps", steps, config.reward_model_train_steps,
        len(prepared.train), config.batch_size, config.reward_model_train_epochs))
    tuning_steps = resolve_train_steps(config.reinforcement_learning_train_steps, len(prepared.train),
                                       config.reinforcement_learning_train_epochs, config.batch_size)
    if config.algorithm in OFFLINE_ALGORITHMS:
        prepared.notes.append(describe_steps(
            f"{config.algorithm} steps (reinforcement_learning_train_steps)", tuning_steps,
            config.reinforcement_learning_train_steps, len(prepared.train), config.batch_size,
            config.reinforcement_learning_train_epochs))
    write_prepared(prepared, output_dir)
    write_report(prepared, report_path, config.prompt_sequence_length, config.target_sequence_length)
    return PreferenceDataResult(len(prepared.train), len(prepared.eval), steps, tuning_steps, prepared)


def _no_preference_data(output_dir: str | Path, report_path: str | Path) -> PreferenceDataResult:
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (TRAIN_FILE, EVAL_FILE):
        (directory / name).write_text("")
    report = Path(report_path)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("# Preference data\n\nNo preference_dataset was given: no pairs were prepared "
                      "(the policy is tuned with the reward function alone).\n", encoding="utf-8")
    return PreferenceDataResult(0, 0, 0, 0, None)
