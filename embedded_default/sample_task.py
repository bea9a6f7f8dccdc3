"""What a bundled sample task is: a package holding its data files and its pipeline parameter values.

`rlhf-pipeline run --sample-task NAME` runs one (`summaries` when no dataset is named). Each task's
package has `data/` (preference.jsonl, prompts.jsonl, eval.jsonl, written by its generator) and
`params.yaml`; the values in params.yaml win over the data files, so a task that trains no reward
model sets `preference_dataset: ""` there.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class SampleTask:
    name: str
    package_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.package_dir / "data"

    @property
    def preference_file(self) -> Path:
        return self.data_dir / "preference.jsonl"

    @property
    def prompt_file(self) -> Path:
        return self.data_dir / "prompts.jsonl"

    @property
    def eval_file(self) -> Path:
        return self.data_dir / "eval.jsonl"

    @property
    def params_file(self) -> Path:
        return self.package_dir / "params.yaml"

    def load_params(self) -> dict[str, Any]:
        """The pipeline parameter values of params.yaml."""
        return yaml.safe_load(self.params_file.read_text(encoding="utf-8"))

    def parameter_values(self) -> dict[str, Any]:
        """Every value the task sets, its datasets included."""
        datasets = {
            "preference_dataset": str(self.preference_file),
            "prompt_dataset": str(self.prompt_file),
            "eval_dataset": str(self.eval_file),
        }
        return {**datasets, **self.load_params()}
