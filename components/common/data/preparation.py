"""The two data preparations: preference pairs for the reward model, prompts for the policy.

Each reads its dataset and, when given, the eval dataset (Vertex's semantics: preference rows are
the reward model's eval pairs and their prompts may serve as eval prompts; prompt rows are the eval
prompts); a stage that cannot use the eval dataset holds out a deterministic share of its own.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from components.common import defaults
from components.common.data import splitting
from components.common.data.loading import PREFERENCE, PROMPT, DataSettings, LoadedDataset, detect_layout, load_dataset

TRAIN_FILE, EVAL_FILE, REJECTS_FILE, ACCOUNTING_FILE = "train.jsonl", "eval.jsonl", "rejects.jsonl", "accounting.json"
FROM_EVAL_DATASET, FROM_SPLIT = "eval_dataset", "split"


@dataclass
class PreparedData:
    """Canonical train and eval examples of one stage, with the books of every dataset read."""

    kind: str  # PREFERENCE or PROMPT
    train: list
    eval: list
    train_data: LoadedDataset
    eval_data: LoadedDataset | None
    eval_origin: str  # FROM_EVAL_DATASET or FROM_SPLIT
    seed: int
    eval_split_fraction: float
    tokenizer_note: str = ""
    notes: list[str] = field(default_factory=list)
    leaks: list = field(default_factory=list)
    shared_prompts: int = 0
    # Why nothing is held out for the evaluation, and what to change; empty when something is.
    missing_eval: str = ""

    @property
    def datasets(self) -> list[LoadedDataset]:
        return [self.train_data] + ([self.eval_data] if self.eval_data else [])

    def accounting(self) -> dict:
        return {
            "kind": self.kind,
            "train_rows": len(self.train),
            "eval_rows": len(self.eval),
            "eval_origin": self.eval_origin,
            "eval_split_fraction": self.eval_split_fraction,
            "seed": self.seed,
            "leaked_pairs": len(self.leaks),
            "shared_prompts": self.shared_prompts,
            "datasets": [d.ledger.to_json() for d in self.datasets],
            "notes": self.notes + ([self.tokenizer_note] if self.tokenizer_note else []),
        }


def _given(path: str | None) -> bool:
    return bool(path and path.strip())


# eval_split_fraction 0 without an eval_dataset: the evaluation would have nothing to run on.
NO_EVAL_DATA = ("eval_split_fraction is 0 and no eval_dataset is given: nothing is held out to evaluate the tuned "
                "policy (nor the reward model); give an eval_dataset, or set eval_split_fraction above 0 (e.g. 0.1)")


def no_held_out_pairs(eval_dataset: str | None) -> str:
    """Why eval_split_fraction 0 holds out no preference pairs when `eval_dataset` holds none, and the fix."""
    source = (f"eval_dataset {eval_dataset} holds prompt rows, not preference pairs" if _given(eval_dataset)
              else "no eval_dataset is given")
    return (f"eval_split_fraction is 0 and {source}: no preference pairs are held out to evaluate the reward "
            "model (and DPO/KTO's implicit reward); give an eval_dataset of preference pairs, or set "
            "eval_split_fraction above 0 (e.g. 0.1)")


def prepare_preferences(dataset: str, eval_dataset: str | None, settings: DataSettings, tokenizer=None,
                        eval_split_fraction: float = defaults.EVAL_SPLIT_FRACTION, seed: int = 0) -> PreparedData:
    train_data = load_dataset(dataset, PREFERENCE, settings, tokenizer)
    notes = []
    if _given(eval_dataset):
        layout = detect_layout(eval_dataset, settings.format)
        if layout and layout.kind == PREFERENCE:
            eval_data = load_dataset(eval_dataset, PREFERENCE, settings, tokenizer, layout)
            prepared = PreparedData(PREFERENCE, train_data.examples, eval_data.examples, train_data, eval_data,
                                    FROM_EVAL_DATASET, seed, eval_split_fraction, notes=notes)
            prepared.leaks = splitting.leaked_pairs(prepared.train, prepared.eval)
            prepared.shared_prompts = splitting.shared_prompts(prepared.train, prepared.eval)
            return prepared
        notes.append(f"{eval_dataset} holds prompt rows, not preference pairs: the reward model's eval pairs "
                     f"are held out from {dataset} instead")
    train, held_out = splitting.split_pairs(train_data.examples, eval_split_fraction, seed)
    prepared = PreparedData(PREFERENCE, train, held_out, train_data, None, FROM_SPLIT, seed, eval_split_fraction,
                            notes=notes)
    if not held_out:
        prepared.missing_eval = no_held_out_pairs(eval_dataset) if eval_split_fraction == 0 else (
            f"no preference pairs can be held out to evaluate the reward model: all {len(train)} pairs of "
            f"{dataset} share one prompt (pairs are held out by whole prompts, and training keeps at least one); "
            "give an eval_dataset of preference pairs")
    return prepared


def prepare_prompts(dataset: str, eval_dataset: str | None, settings: DataSettings, tokenizer=None,
                    eval_split_fraction: float = defaults.EVAL_SPLIT_FRACTION,
                    max_eval_prompts: int = defaults.MAX_EVAL_PROMPTS, seed: int = 0) -> PreparedData:
    train_data = load_dataset(dataset, PROMPT, settings, tokenizer)
    if _given(eval_dataset):
        eval_data = load_dataset(eval_dataset, PROMPT, settings, tokenizer)
        held_out, set_aside = splitting.select(eval_data.examples, max_eval_prompts, seed)
        eval_data.ledger.used, eval_data.ledger.set_aside = len(held_out), len(set_aside)
        prepared = PreparedData(PROMPT, train_data.examples, held_out, train_data, eval_data, FROM_EVAL_DATASET,
                                seed, eval_split_fraction)
        if set_aside:
            prepared.notes.append(f"{len(set_aside)} eval prompts beyond max_eval_prompts={max_eval_prompts} "
                                  "were set aside")
    else:
        train, held_out = splitting.split_prompts(train_data.examples, eval_split_fraction, max_eval_prompts, seed)
        prepared = PreparedData(PROMPT, train, held_out, train_data, None, FROM_SPLIT, seed, eval_split_fraction)
        if not held_out:
            prepared.missing_eval = NO_EVAL_DATA if eval_split_fraction == 0 else (
                f"no prompts are held out to evaluate the tuned policy: {dataset} has {len(train)} usable "
                "prompt(s) and training keeps at least one; give an eval_dataset")
    prepared.shared_prompts = splitting.shared_prompts(prepared.train, prepared.eval)
    return prepared


def describe_steps(name: str, steps: int, requested: int, train_rows: int, batch_size: int, epochs: int) -> str:
    """How a stage's step count came about, for its report."""
    if requested > 0:
        return f"{name}: {steps} (as given)"
    return f"{name}: {steps} (derived: ceil({train_rows} / {batch_size}) x {epochs} epochs)"


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def prepared_files(directory: str) -> tuple[str, str]:
    """The training and held-out files that write_prepared writes in `directory`."""
    return os.path.join(directory, TRAIN_FILE), os.path.join(directory, EVAL_FILE)


def holds_data(path: str | Path) -> bool:
    """Whether `path` is a file with something in it: the prepared files of a run without that data
    are empty (components/prepare_preference_data/stage.py)."""
    path = Path(path)
    return path.is_file() and path.stat().st_size > 0


def write_prepared(prepared: PreparedData, directory: str | Path) -> Path:
    """train.jsonl, eval.jsonl (canonical rows), rejects.jsonl and accounting.json in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_jsonl(directory / TRAIN_FILE, (e.to_json() for e in prepared.train))
    write_jsonl(directory / EVAL_FILE, (e.to_json() for e in prepared.eval))
    write_jsonl(directory / REJECTS_FILE, (r.to_json() for d in prepared.datasets for r in d.ledger.rejects))
    (directory / ACCOUNTING_FILE).write_text(json.dumps(prepared.accounting(), indent=2, ensure_ascii=False) + "\n")
    return directory
