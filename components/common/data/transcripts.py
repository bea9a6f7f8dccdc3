"""Conversations as plain text, in the layout of the Anthropic HH data.

A chat prompt becomes ``context\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant:`` and an
answer is what follows, starting with a space, so prompt + answer reads as one transcript whatever
tokenizer the base model has (no chat template is assumed).
"""

from dataclasses import dataclass

USER, ASSISTANT, SYSTEM = "user", "assistant", "system"
ROLE_ALIASES = {"user": USER, "human": USER, "assistant": ASSISTANT, "model": ASSISTANT, "bot": ASSISTANT,
                "system": SYSTEM}
LABELS = {USER: "Human", ASSISTANT: "Assistant"}
TURN_SEPARATOR = "\n\n"
ASSISTANT_MARKER = f"{TURN_SEPARATOR}{LABELS[ASSISTANT]}:"
ANSWER_LEAD = " "
ACCEPTED_MESSAGE = 'a list of {"role" (or "author"): "user"|"assistant", "content": "..."} objects'


class MessageError(ValueError):
    """A message list that cannot be read; the text says why."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


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


def render_prompt(messages: list[Message], context: str | None = None) -> str:
    """The transcript up to and including the cue of the assistant's next turn.

    System messages and the Vertex `context` come first; the last message must be the user's.
    """
    system = [m.content for m in messages if m.role == SYSTEM]
    turns = [m for m in messages if m.role != SYSTEM]
    if not turns or turns[-1].role != USER:
        raise MessageError("the last message of a prompt must be the user's (the turn the answers reply to)")
    preamble = [text for text in [context, *system] if text and text.strip()]
    parts = preamble + [_turn(m) for m in turns]
    return TURN_SEPARATOR.join(parts) + ASSISTANT_MARKER


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


def split_shared_prompt(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen answer, rejected answer) of two whole transcripts, or None without a shared prompt.

    The prompt is the shared beginning up to and including the last assistant cue in it.
    """
    cue = chosen.rfind(ASSISTANT_MARKER, 0, _shared_prefix_length(chosen, rejected))
    if cue < 0:
        return None
    end = cue + len(ASSISTANT_MARKER)
    return chosen[:end], chosen[end:], rejected[end:]


def split_shared_messages(chosen: list[Message], rejected: list[Message]) -> tuple[str, str, str]:
    """(prompt, chosen answer, rejected answer) of two whole conversations that differ in the last turn."""
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        if conversation[-1].role != ASSISTANT:
            raise MessageError(f"the last message of '{name}' must be the assistant's answer")
    if chosen[:-1] != rejected[:-1]:
        raise MessageError("'chosen' and 'rejected' must share every message before the last one")
    prompt = render_prompt(chosen[:-1])
    return prompt, render_answer(chosen[-1].content), render_answer(rejected[-1].content)
