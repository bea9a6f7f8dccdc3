"""Conversations as plain text, in the layout of the Anthropic HH data, and as the messages they came as.

A chat prompt becomes ``context\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:`` and an
answer is what follows, starting with a space, so prompt + answer reads as one transcript whatever
tokenizer the base model has. A model with a chat template needs the conversation itself instead, so
a prompt that came as one also keeps its messages (`Prompt.messages`), HH transcripts parsed back.
"""

import re
from dataclasses import dataclass

from components.common.prompts import apply_instruction

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
ROLE_ALIASES = {"user": USER, "human": USER, "assistant": ASSISTANT, "model": ASSISTANT, "bot": ASSISTANT,
                "system": SYSTEM}
LABELS = {USER: "Human", ASSISTANT: "Assistant"}
LABEL_ROLES = {label: role for role, label in LABELS.items()}
TURN_SEPARATOR = "\n\n"
ASSISTANT_MARKER = f"{TURN_SEPARATOR}{LABELS[ASSISTANT]}:"
ANSWER_LEAD = " "
ACCEPTED_MESSAGE = 'a list of {"role" (or "author"): "user"|"assistant", "content": "..."} objects'
TURN_PATTERN = re.compile(f"{TURN_SEPARATOR}({LABELS[USER]}|{LABELS[ASSISTANT]}):")
MESSAGES_FIELD = "prompt_messages"  # the canonical rows' field holding a prompt's conversation


class MessageError(ValueError):
    """A message list that cannot be read; the text says why."""


@dataclass(frozen=True)
class Message:
    role: str  # USER, ASSISTANT or SYSTEM
    content: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Prompt:
    """A prompt as every model can read it (`text`) and, when it came as a conversation, as a chat
    template reads it (`messages`: at most one system message, first, and the user's message last)."""

    text: str
    messages: tuple[Message, ...] | None = None

    def with_instruction(self, instruction: str | None) -> "Prompt":
        """The prompt with Vertex's `instruction` before the text and before the first user message's
        content, joined as `apply_instruction` joins them, so that both forms say the same thing."""
        if not instruction:
            return self
        messages = self.messages
        if messages is not None:
            first = next(i for i, m in enumerate(messages) if m.role == USER)
            instructed = Message(USER, apply_instruction(messages[first].content, instruction))
            messages = (*messages[:first], instructed, *messages[first + 1:])
        return Prompt(apply_instruction(self.text, instruction), messages)

    def with_system_prompt(self, system_prompt: str | None) -> "Prompt":
        """The prompt with `system_prompt` as its system message, when it has none of its own.

        A chat template then reads [system, ...the conversation] (a plain-text prompt becomes
        [system, user], so it is a conversation from here on), and the plain text, which a model
        without a template reads, starts with the system text as its first paragraph, as a
        conversation's system message starts its 'Human: ... Assistant:' transcript (`chat_prompt`).
        A prompt that has a system message keeps it: the row's own wins.
        """
        if not system_prompt or not system_prompt.strip() or self.has_system_message():
            return self
        system = system_prompt.strip()
        turns = self.messages if self.messages is not None else (Message(USER, self.text),)
        text = self.text.removeprefix(TURN_SEPARATOR)  # an HH transcript's leading separator: one is enough
        return Prompt(f"{system}{TURN_SEPARATOR}{text}", (Message(SYSTEM, system), *turns))

    def has_system_message(self) -> bool:
        return self.messages is not None and any(m.role == SYSTEM for m in self.messages)

    @classmethod
    def of_text(cls, text: str) -> "Prompt":
        """A prompt given as text; an HH transcript that parses cleanly also keeps its turns."""
        return cls(text, parse_transcript(text))

    @classmethod
    def from_row(cls, row: dict) -> "Prompt":
        """The prompt of a canonical row: `prompt`, plus its conversation when the row keeps one."""
        messages = row.get(MESSAGES_FIELD)
        if messages is None:
            return cls(row["prompt"])
        return cls(row["prompt"], tuple(Message(m["role"], m["content"]) for m in messages))

    def conversation(self) -> list[dict[str, str]]:
        """The messages a chat template renders: the conversation, or the text as one user turn."""
        if self.messages is None:
            return [Message(USER, self.text).to_json()]
        return [message.to_json() for message in self.messages]


def parse_messages(value) -> list[Message]:
    """Role/content (TRL) or author/content (Vertex) message objects, checked."""
    if not isinstance(value, list) or not value:
        raise MessageError(f"expected {ACCEPTED_MESSAGE}, got {_describe(value)}")
    messages = []
    for position, item in enumerate(value):
        if not isinstance(item, dict):
            raise MessageError(f"message {position} is {_describe(item)}, expected an object")
        role = item.get("role", item.get("author"))
        content = item.get("content")
        if not isinstance(role, str) or role.lower() not in ROLE_ALIASES:
            raise MessageError(f"message {position} has role {role!r}; expected user, assistant or system")
        if not isinstance(content, str):
            raise MessageError(f"message {position} has content {_describe(content)}, expected a string")
        if not content.strip():
            raise MessageError(f"message {position} has empty content")
        messages.append(Message(ROLE_ALIASES[role.lower()], content))
    return messages


def _describe(value) -> str:
    return "an empty list" if value == [] else f"a {type(value).__name__}"


def _turn(message: Message) -> str:
    return f"{LABELS[message.role]}: {message.content}"


def chat_prompt(messages: list[Message], context: str | None = None) -> Prompt:
    """A conversation as a prompt: its transcript up to and including the cue of the assistant's next
    turn, and its messages.

    The Vertex `context` and the system messages come first, in the messages as one system message
    (chat templates take one, at the start); the last message must be the user's.
    """
    preamble = [context, *(m.content for m in messages if m.role == SYSTEM)]
    system = [text for text in preamble if text and text.strip()]
    turns = [m for m in messages if m.role != SYSTEM]
    if not turns or turns[-1].role != USER:
        raise MessageError("the last message of a prompt must be the user's (the turn the answers reply to)")
    leading = (Message(SYSTEM, TURN_SEPARATOR.join(system)),) if system else ()
    text = TURN_SEPARATOR.join(system + [_turn(m) for m in turns]) + ASSISTANT_MARKER
    return Prompt(text, (*leading, *turns))


def parse_transcript(prompt: str) -> tuple[Message, ...] | None:
    """The messages of an HH transcript prompt (``\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:``).

    None when it is not one cleanly: text before the first turn, turns that do not alternate from the
    human's, an empty turn, or anything after the final assistant cue.
    """
    pieces = TURN_PATTERN.split(prompt if prompt.startswith(TURN_SEPARATOR) else TURN_SEPARATOR + prompt)
    preamble, labels, contents = pieces[0], pieces[1::2], pieces[2::2]
    alternating = [LABELS[USER], LABELS[ASSISTANT]] * (len(labels) // 2)
    if preamble or not labels or labels != alternating or contents[-1]:
        return None
    messages = tuple(Message(LABEL_ROLES[label], content.removeprefix(ANSWER_LEAD))
                     for label, content in zip(labels[:-1], contents[:-1]))
    return messages if all(m.content.strip() for m in messages) else None


def render_answer(content: str) -> str:
    """An answer as it follows a rendered prompt (one leading space, as in the HH data)."""
    return content if content[:1].isspace() else ANSWER_LEAD + content


def render_answer_messages(messages: list[Message]) -> str:
    """The text of an answer given as messages: the assistant's reply and any turns after it."""
    if messages[0].role != ASSISTANT:
        raise MessageError("an answer given as messages must start with the assistant's message")
    rest = "".join(TURN_SEPARATOR + _turn(m) for m in messages[1:] if m.role != SYSTEM)
    return render_answer(messages[0].content) + rest


def _shared_prefix_length(a: str, b: str) -> int:
    """Length of the common beginning, by bisection on slice comparisons (fast on long texts)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def split_shared_prompt(chosen: str, rejected: str) -> tuple[Prompt, str, str] | None:
    """(prompt, chosen answer, rejected answer) of two whole transcripts, or None without a shared prompt.

    The prompt is the shared beginning up to and including the last assistant cue in it.
    """
    cue = chosen.rfind(ASSISTANT_MARKER, 0, _shared_prefix_length(chosen, rejected))
    if cue < 0:
        return None
    end = cue + len(ASSISTANT_MARKER)
    return Prompt.of_text(chosen[:end]), chosen[end:], rejected[end:]


def split_shared_messages(chosen: list[Message], rejected: list[Message]) -> tuple[Prompt, str, str]:
    """(prompt, chosen answer, rejected answer) of two whole conversations that differ in the last turn."""
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        if conversation[-1].role != ASSISTANT:
            raise MessageError(f"the last message of '{name}' must be the assistant's answer")
    if chosen[:-1] != rejected[:-1]:
        raise MessageError("'chosen' and 'rejected' must share every message before the last one")
    return chat_prompt(chosen[:-1]), render_answer(chosen[-1].content), render_answer(rejected[-1].content)
