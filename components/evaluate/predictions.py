"""Generations written as Vertex AI bulk-inference rows, the format Vertex's pipeline produces.

`inputs_pretokenized` keeps Vertex's meaning: the text the model tokenized, so for a model that reads
its chat template, the prompt as the template rendered it (system message, turns, generation cue), and
for one that does not, the plain prompt (instruction included). It is the text before any truncation
to prompt_sequence_length, which keeps a longer prompt's last tokens.
"""

import json
from pathlib import Path


def vertex_prediction_row(prompt: str, response: str) -> dict:
    return {"inputs": {"inputs_pretokenized": prompt, "targets_pretokenized": ""}, "prediction": response}


def write_predictions(path: str | Path, prompts: list[str], responses: list[str]) -> None:
    """One JSONL row per prompt, in prompt order."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    lines = [json.dumps(vertex_prediction_row(p, r), ensure_ascii=False) for p, r in zip(prompts, responses)]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
