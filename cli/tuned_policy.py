"""The tuned policy of a local run, answering prompts as the pipeline's evaluation prompts it.

A run directory's `policy/` (summary.json `paths.policy`) is a plain Hugging Face model directory,
LoRA already merged, so `AutoModelForCausalLM.from_pretrained` loads it as it is. Prompts get the
run's `instruction` (and `system_prompt`, when they have no system message) and are rendered with the model's chat template under the run's
`use_chat_template` setting (components/common/chat_templates.py), then sampled with the
pipeline's own generation (components/common/generation.py).
"""

import json
from dataclasses import dataclass
from pathlib import Path

from components.common.data.loading import PROMPT, DataSettings, load_dataset
from components.common.data.transcripts import Prompt
from components.common.errors import UserInputError
from pipeline.parameters import defaults

GREEDY = 0.0


@dataclass(frozen=True)
class RunSettings:
    """What the run's parameters say about prompting its policy."""

    policy_dir: Path
    instruction: str | None
    system_prompt: str | None
    use_chat_template: str
    prompt_sequence_length: int
    target_sequence_length: int
    sampling_temperature: float


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{path.parent}: no {path.name}; give the directory of a finished "
                             "`rlhf-pipeline run` (`rlhf-pipeline runs` lists them)") from None
    except ValueError as error:
        raise UserInputError(f"{path}: not valid JSON ({error})") from None


def run_settings(run_dir: str | Path) -> RunSettings:
    """The tuned policy's directory and the prompting parameters of the run in `run_dir`."""
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "summary.json")
    values = _read_json(run_dir / "parameters.json")
    policy_dir = run_dir / "policy"  # where it is in a run directory that was moved, too
    if not (policy_dir / "config.json").is_file():  # a run from before run directories held their policy
        policy_dir = Path(summary.get("paths", {}).get("policy") or "")
    if not (policy_dir / "config.json").is_file():
        raise UserInputError(f"{run_dir}: its tuned policy {policy_dir} is missing (no config.json)")
    settings = {**defaults(), **values}
    return RunSettings(policy_dir, settings["instruction"] or None,
                       settings["system_prompt"] or None, settings["use_chat_template"],
                       settings["prompt_sequence_length"], settings["target_sequence_length"],
                       settings["sampling_temperature"])


def prompts_from_text(texts: list[str], settings: RunSettings) -> list[Prompt]:
    """Prompts typed on the command line, with the run's instruction and system prompt, as the data stages
    frame them."""
    return [Prompt.of_text(text).with_instruction(settings.instruction).with_system_prompt(settings.system_prompt)
            for text in texts]


def prompts_from_file(path: str, settings: RunSettings) -> list[Prompt]:
    """The prompts of a prompt dataset in any layout the pipeline reads (`input_text`, `prompt`,
    `messages`...), instruction and system prompt included, as the data stages read them."""
    data_settings = DataSettings(instruction=settings.instruction, system_prompt=settings.system_prompt)
    rows = load_dataset(path, PROMPT, data_settings).examples
    return [Prompt(row.prompt, row.prompt_messages) for row in rows]


class TunedPolicy:
    """The run's tuned policy and its tokenizer, loaded once, answering batches of prompts."""

    def __init__(self, settings: RunSettings):
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as transformers_logging

        from components.common.chat_templates import PromptFormatter
        from components.common.models import load_tokenizer

        transformers_logging.disable_progress_bar()  # "Loading weights" is no answer
        self.settings = settings
        tokenizer = load_tokenizer(str(settings.policy_dir), padding_side="left")
        self.formatter = PromptFormatter(tokenizer, settings.use_chat_template, str(settings.policy_dir))
        self.model = AutoModelForCausalLM.from_pretrained(settings.policy_dir).eval()

    def answer(self, prompts: list[Prompt], temperature: float, max_new_tokens: int, seed: int) -> list[str]:
        """One answer per prompt: sampled at `temperature`, greedy at 0."""
        import torch

        from components.common.generation import generate_responses

        torch.manual_seed(seed)
        batch = generate_responses(
            self.model, self.formatter.tokenizer, self.formatter.prompts(prompts),
            max_new_tokens=max_new_tokens, max_prompt_tokens=self.settings.prompt_sequence_length,
            temperature=temperature if temperature > GREEDY else 1.0, greedy=temperature <= GREEDY,
        )
        return [text.strip() for text in batch.texts]
