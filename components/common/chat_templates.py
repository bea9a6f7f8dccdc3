"""Prompts as each model reads them: through its chat template, or as plain text.

An instruct model fed a raw "Human: ... Assistant:" transcript answers off topic and rarely emits
its end-of-turn token; it must see prompts in the chat format it was tuned on. The data stages keep
both forms of every prompt (components/common/data): the plain `prompt` text and, when the prompt
came as a conversation, its `prompt_messages`. Each model then renders the prompt with its own
tokenizer through a `PromptFormatter`, the same way in reward-model training, PPO and evaluation:

- with the chat template on, the conversation (a plain-text prompt becomes one user message) is
  rendered with `apply_chat_template(add_generation_prompt=True)`, and answers are the assistant's
  content without the separating space the plain-text transcript puts before it;
- with it off, the plain text is used as it is.

The policy and the reward model may have different tokenizers, so each has its own formatter and
decides for itself: `use_chat_template` is "auto" (use the template when the tokenizer has one),
"true" (required: a model without one is an error) or "false".
"""

from collections.abc import Sequence

from components.common.data.transcripts import MESSAGES_FIELD, SYSTEM, Prompt
from components.common.errors import UserInputError

AUTO, ALWAYS, NEVER = "auto", "true", "false"
USE_CHAT_TEMPLATE_VALUES = (AUTO, ALWAYS, NEVER)


def check_use_chat_template(setting: str) -> None:
    if setting not in USE_CHAT_TEMPLATE_VALUES:
        raise UserInputError(
            f"use_chat_template must be one of {', '.join(USE_CHAT_TEMPLATE_VALUES)}, got {setting!r}"
        )


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def uses_chat_template(setting: str, tokenizer, model: str) -> bool:
    """Whether `model` (described by its tokenizer) reads prompts through its chat template."""
    check_use_chat_template(setting)
    if setting == NEVER:
        return False
    if setting == ALWAYS and not has_chat_template(tokenizer):
        raise UserInputError(
            f"use_chat_template is 'true' but the tokenizer of {model} has no chat template; "
            "set it to 'auto' or 'false' to feed this model plain-text prompts"
        )
    return has_chat_template(tokenizer)


class PromptFormatter:
    """Turns prompts and answers into the text one model reads, with that model's tokenizer."""

    def __init__(self, tokenizer, setting: str, model: str):
        self.tokenizer = tokenizer
        self.templated = uses_chat_template(setting, tokenizer, model)

    def prompt(self, prompt: Prompt) -> str:
        """The text the model continues with its answer."""
        if not self.templated:
            return prompt.text
        rendered = self.tokenizer.apply_chat_template(
            prompt.conversation(), tokenize=False, add_generation_prompt=True
        )
        return self._without_added_bos(rendered)

    def prompts(self, prompts: Sequence[Prompt]) -> list[str]:
        return [self.prompt(p) for p in prompts]

    def answer(self, answer: str) -> str:
        """An answer as it follows the rendered prompt.

        Plain-text transcripts separate "Assistant:" and the answer by a space that belongs to the
        answer (as in the HH data); after a template's generation prompt the content starts at once.
        """
        return answer.lstrip() if self.templated else answer

    def _without_added_bos(self, rendered: str) -> str:
        """The rendered text without a leading BOS that the tokenizer adds again when it encodes.

        Templates such as Llama 3's write the BOS token themselves; every stage encodes the text
        with special tokens on, so keeping it would start each sequence with two BOS tokens.
        """
        bos = self.tokenizer.bos_token
        if not bos or not rendered.startswith(bos):
            return rendered
        encoded = self.tokenizer("", add_special_tokens=True)["input_ids"]
        return rendered[len(bos):] if self.tokenizer.bos_token_id in encoded else rendered



def rendering_note(setting: str, length_tokenizer, examples: Sequence) -> str:
    """The data report's line on how the base model will read the prepared prompts.

    `length_tokenizer` is the data stage's LengthTokenizer: without a tokenizer (it could not be
    loaded here) the trainers decide when they load the model. Raises UserInputError when the
    setting cannot be met, so that the data stage fails before any training starts.
    """
    tokenizer, model = length_tokenizer.tokenizer, length_tokenizer.source
    conversations = sum(MESSAGES_FIELD in example.to_json() for example in examples)
    counted = f"{conversations} of {len(examples)} prompts came as conversations"
    if tokenizer is None:
        return f"Chat template: use_chat_template={setting}; decided when the model loads ({counted})."
    if uses_chat_template(setting, tokenizer, model):
        return (f"Chat template: used (use_chat_template={setting}): the base model reads every prompt through "
                f"its chat template, plain-text prompts as one user message ({counted}).")
    reason = "the tokenizer has none" if not has_chat_template(tokenizer) else "it is turned off"
    return (f"Chat template: not used (use_chat_template={setting}; {reason}): conversations are rendered as "
            f"'Human: ... Assistant:' transcripts ({counted}).")


def system_prompt_note(system_prompt: str | None, examples: Sequence) -> str:
    """The data report's line on `system_prompt`: its text, and how many prepared prompts carry it
    (the others came with a system message of their own, which they keep)."""
    if not system_prompt or not system_prompt.strip():
        return "System prompt: none (system_prompt is empty): prompts keep the system message they came with, if any."
    own = sum(_system_message(example) not in (None, system_prompt.strip()) for example in examples)
    return (f"System prompt: {system_prompt.strip()!r} (system_prompt) is the system message of "
            f"{len(examples) - own} of {len(examples)} prompts; {own} came with one of their own and keep it. "
            "A model without a chat template reads it as the prompt's first paragraph.")


def _system_message(example) -> str | None:
    messages = example.to_json().get(MESSAGES_FIELD) or []
    return next((m["content"] for m in messages if m["role"] == SYSTEM), None)
