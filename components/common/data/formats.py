"""The dataset layouts users bring, how each is recognised, and how its rows become canonical examples.

Preference layouts (each turns into `PreferencePair`s):
- vertex-text: `input_text`, `candidate_0`, `candidate_1`, `choice` (0 or 1).
- vertex-chat: `messages` (author/content), optional `context`, `candidate_0`, `candidate_1`, `choice`.
- explicit: `prompt`, `chosen`, `rejected`, strings or role/content message lists.
- implicit: `chosen` and `rejected` as whole transcripts sharing the prompt (Anthropic HH).
- scored: explicit or implicit plus `score_chosen`/`score_rejected` or `margin` (kept as a margin).
- ranking: `prompt` and `responses` (or `completions`) with `ranks` or `rankings` (1 is best) or
  `scores` (higher is better), or responses as objects with `text` and `rank`/`score`: every
  ordered pair of responses that do not tie.
- unpaired: `prompt`, `completion`, `label` (true/false, the KTO layout): within each prompt,
  every good completion against every bad one.
Prompt layouts (each turns into `PromptRow`s): `input_text`, `prompt` (string or messages), `messages`,
and GSM8K's `question` + `answer` (the question becomes the user's message, the number after the
answer's last `####` the `ground_truth`, unless the row gives one). Every other field of a prompt row
is kept, as given, among the row's `columns`, which reach a reward function as keyword arguments the
way TRL passes dataset columns: `ground_truth` (a non-empty string or a number) and anything else.
Null values and empty CSV cells are left out; CSV cells stay text.
Wherever a layout has `prompt`, it may be called `query` instead, as in seed notebooks.

A prompt that came as a conversation (messages, or an HH transcript that parses cleanly) keeps its
messages beside its text; every example is checked for what the stages after this one refuse.
"""

import itertools
import json
from collections import Counter
from typing import Iterable

from components.common.data import fields, reasons
from components.common.data.answers import GSM8K_MARKER, gsm8k_final_answer
from components.common.data.fields import RowError
from components.common.data.records import (
    GROUND_TRUTH,
    Conversion,
    PreferencePair,
    PromptRow,
    RawRecord,
    Reject,
    text_fault,
)
from components.common.data.transcripts import (
    USER,
    Message,
    MessageError,
    Prompt,
    chat_prompt,
    render_answer,
    render_answer_messages,
    split_shared_messages,
    split_shared_prompt,
)
from components.common.reward_functions import CALL_ARGUMENTS

AUTO = "auto"
VERTEX_TEXT, VERTEX_CHAT, EXPLICIT, IMPLICIT, SCORED, RANKING, UNPAIRED = (
    "vertex-text", "vertex-chat", "explicit", "implicit", "scored", "ranking", "unpaired")
PROMPT_FIELD_FORMAT, GSM8K = "prompt", "gsm8k"

PREFERENCE_FORMATS: dict[str, str] = {
    VERTEX_TEXT: "input_text, candidate_0, candidate_1, choice",
    VERTEX_CHAT: "messages (+ context), candidate_0, candidate_1, choice",
    EXPLICIT: "prompt (or query), chosen, rejected",
    IMPLICIT: "chosen, rejected (whole transcripts sharing the prompt)",
    SCORED: "[prompt (or query),] chosen, rejected, and score_chosen + score_rejected or margin",
    RANKING: "prompt (or query), responses (or completions), and ranks (or rankings) or scores",
    UNPAIRED: "prompt (or query), completion, label",
}
PROMPT_FORMATS: dict[str, str] = {
    VERTEX_TEXT: "input_text",
    PROMPT_FIELD_FORMAT: "prompt or query (a string or messages), optional ground_truth",
    VERTEX_CHAT: "messages (+ context)",
    GSM8K: f"question, answer ending in '{GSM8K_MARKER} N' (N becomes the ground_truth)",
}
VERTEX_PREFERENCE_FIELDS = {"candidate_0", "candidate_1", "choice"}
PROMPT_FIELDS = ("prompt", "query")
RESPONSE_LIST_FIELDS = ("responses", "completions")
RANKING_FIELDS = ("scores", "ranks", "rankings")  # one per response: scores if given, else ranks
RESPONSE_TEXT_KEYS = ("text", "content", "response", "completion")
SCORE_FIELDS = ("score_chosen", "score_rejected")
GSM8K_FIELDS = {"question", "answer"}
MAX_COLUMNS_BYTES = 64 * 1024  # a prompt's columns as JSON: they travel with every one of its completions


def detect_preference_format(names: Iterable[str]) -> str | None:
    """The preference layout a row's field names match, or None."""
    present = set(names)
    if VERTEX_PREFERENCE_FIELDS <= present:
        if "messages" in present:
            return VERTEX_CHAT
        if "input_text" in present:
            return VERTEX_TEXT
        return None
    prompt = bool(present & set(PROMPT_FIELDS))
    if prompt and present & set(RESPONSE_LIST_FIELDS):
        return RANKING
    if prompt and {"completion", "label"} <= present:
        return UNPAIRED
    if {"chosen", "rejected"} <= present:
        if set(SCORE_FIELDS) <= present or "margin" in present:
            return SCORED
        return EXPLICIT if prompt else IMPLICIT
    return None


def detect_prompt_format(names: Iterable[str]) -> str | None:
    """The prompt layout a row's field names match, or None."""
    present = set(names)
    for name, accepted in ((VERTEX_TEXT, {"input_text"}), (PROMPT_FIELD_FORMAT, set(PROMPT_FIELDS)),
                           (VERTEX_CHAT, {"messages"})):
        if present & accepted:
            return name
    return GSM8K if GSM8K_FIELDS <= present else None


class Converter:
    """Turns rows of one layout into canonical examples; counts label balance as it goes."""

    def __init__(self, instruction: str | None, system_prompt: str | None = None):
        self.instruction = instruction
        self.system_prompt = system_prompt
        self.labels: Counter = Counter()

    def convert(self, record: RawRecord) -> Conversion:
        try:
            return self._convert(record)
        except RowError as error:
            return Conversion(rejects=[Reject(record.ref, error.reason, error.field, error.detail)])

    def finish(self) -> Conversion:
        """Examples that need every row first (pairing across rows); most layouts have none."""
        return Conversion()

    def _convert(self, record: RawRecord) -> Conversion:
        raise NotImplementedError

    def _pair(self, record, prompt: Prompt, chosen: str, rejected: str, margin=None,
              names=("chosen", "rejected")) -> PreferencePair:
        """The canonical pair; `names` are the row's fields the answers came from, for the rejects."""
        if chosen == rejected:
            raise RowError(reasons.IDENTICAL_ANSWERS, ", ".join(names),
                           f"'{names[0]}' and '{names[1]}' are identical: the pair says nothing")
        prompt = self._framed(prompt)
        pair = PreferencePair(prompt.text, chosen, rejected, record.ref, margin, prompt.messages)
        return _usable(pair, dict(zip(("chosen", "rejected"), names)))

    def _framed(self, prompt: Prompt) -> Prompt:
        """The prompt with the run's `instruction` and, when it has no system message, its `system_prompt`."""
        return prompt.with_instruction(self.instruction).with_system_prompt(self.system_prompt)

    def _prompt_row(self, record, prompt: Prompt, columns: dict) -> PromptRow:
        prompt = self._framed(prompt)
        return _usable(PromptRow(prompt.text, record.ref, prompt.messages, columns), {})


def _usable(example, sources: dict[str, str]):
    """`example`, when the stages after this one can take every text of it; otherwise its row is wrong.

    Every example passes here, whatever its layout, so that no rule of the trainers is left for them
    to find; `sources` names the row's field an answer came from (the prompt is named 'prompt').
    """
    fault = text_fault(example)
    if fault is None:
        return example
    name, reason, what = fault
    field = sources.get(name, name)
    raise RowError(reason, field, f"the {'prompt' if name == 'prompt' else 'answer'} taken from '{field}' {what}")


def _chat_prompt(record: RawRecord, field: str, context: str | None = None) -> Prompt:
    try:
        return chat_prompt(fields.messages(record, field), context)
    except MessageError as error:
        raise RowError(reasons.BAD_MESSAGES, field, f"'{field}': {error}") from None


def _prompt(record: RawRecord, field: str | None = None) -> Prompt:
    """The prompt in `field` (by default `prompt` or `query`): a string is used as is (an HH transcript
    also keeps its turns), messages are rendered as a transcript and kept."""
    field = field or fields.first_present(record, PROMPT_FIELDS)
    if fields.is_message_list(record, field):
        return _chat_prompt(record, field)
    return Prompt.of_text(fields.text(record, field))


def _vertex_chat_prompt(record: RawRecord) -> Prompt:
    """Vertex's chat prompt: `messages`, after the optional `context`."""
    context = fields.text(record, "context") if fields.present(record, "context") else None
    return _chat_prompt(record, "messages", context)


def _answer_text(record: RawRecord, field: str, prompt_is_chat: bool) -> str:
    if fields.is_message_list(record, field):
        try:
            return render_answer_messages(fields.messages(record, field))
        except MessageError as error:
            raise RowError(reasons.BAD_MESSAGES, field, f"'{field}': {error}") from None
    answer = fields.text(record, field)
    return render_answer(answer) if prompt_is_chat else answer


class VertexText(Converter):
    def _convert(self, record):
        prompt = Prompt.of_text(fields.text(record, "input_text"))
        candidates = fields.text(record, "candidate_0"), fields.text(record, "candidate_1")
        choice = fields.choice(record)
        self.labels[f"choice={choice}"] += 1
        pair = self._pair(record, prompt, candidates[choice], candidates[1 - choice],
                          names=("candidate_0", "candidate_1"))
        return Conversion(examples=[pair])


class VertexChat(Converter):
    def _convert(self, record):
        prompt = _vertex_chat_prompt(record)
        candidates = [render_answer(fields.text(record, f"candidate_{i}")) for i in (0, 1)]
        choice = fields.choice(record)
        self.labels[f"choice={choice}"] += 1
        pair = self._pair(record, prompt, candidates[choice], candidates[1 - choice],
                          names=("candidate_0", "candidate_1"))
        return Conversion(examples=[pair])


class Explicit(Converter):
    def _parts(self, record) -> tuple[Prompt, str, str]:
        if not any(fields.present(record, field) for field in PROMPT_FIELDS):
            return self._implicit_parts(record)
        prompt = _prompt(record)
        chat = prompt.messages is not None
        return prompt, _answer_text(record, "chosen", chat), _answer_text(record, "rejected", chat)

    def _implicit_parts(self, record) -> tuple[Prompt, str, str]:
        if fields.is_message_list(record, "chosen") and fields.is_message_list(record, "rejected"):
            try:
                return split_shared_messages(fields.messages(record, "chosen"), fields.messages(record, "rejected"))
            except MessageError as error:
                raise RowError(reasons.BAD_MESSAGES, "chosen, rejected", str(error)) from None
        chosen, rejected = fields.text(record, "chosen"), fields.text(record, "rejected")
        if chosen == rejected:
            raise RowError(reasons.IDENTICAL_ANSWERS, "chosen, rejected", "'chosen' and 'rejected' are identical")
        parts = split_shared_prompt(chosen, rejected)
        if parts is None:
            raise RowError(reasons.NO_SHARED_PROMPT, "chosen, rejected",
                           "'chosen' and 'rejected' share no beginning that ends with an '\\n\\nAssistant:' turn; "
                           "give the prompt in a 'prompt' (or 'query') field")
        return parts

    def _margin(self, record) -> float | None:
        return None

    def _convert(self, record):
        prompt, chosen, rejected = self._parts(record)
        return Conversion(examples=[self._pair(record, prompt, chosen, rejected, self._margin(record))])


Implicit = Explicit  # the same reader: without a `prompt` field the prompt is the transcripts' shared part


class Scored(Explicit):
    def _margin(self, record) -> float:
        if fields.present(record, "margin"):
            margin = fields.number(record, "margin")
        else:
            margin = fields.number(record, "score_chosen") - fields.number(record, "score_rejected")
        if margin < 0:
            raise RowError(reasons.BAD_SCORE, "margin" if fields.present(record, "margin") else "score_chosen",
                           f"the chosen answer scores below the rejected one (margin {margin:g}); "
                           "swap them or fix the scores")
        self.labels["margin>0" if margin > 0 else "margin=0"] += 1
        return margin


class Ranking(Converter):
    def _responses(self, record) -> tuple[str, list, list[float], bool]:
        """(field, response values, one sort key per response (higher is better), keys are scores)."""
        field = fields.first_present(record, RESPONSE_LIST_FIELDS)
        responses = fields.structured(record, field)
        if not isinstance(responses, list) or len(responses) < 2:
            raise RowError(reasons.WRONG_TYPE, field, f"'{field}' must be a list of at least 2 responses")
        if all(isinstance(r, dict) for r in responses):
            by = "score" if all("score" in r for r in responses) else "rank"
            values = [r.get(by) for r in responses]
            texts = [next((r[k] for k in RESPONSE_TEXT_KEYS if k in r), None) for r in responses]
        else:
            by = fields.first_present(record, RANKING_FIELDS)
            values = fields.structured(record, by)
            texts = responses
            if not isinstance(values, list) or len(values) != len(responses):
                raise RowError(reasons.BAD_SCORE, by, f"'{by}' must be a list with one entry per response")
        keys = [fields.number(record, f"{field}/{by}", value) for value in values]
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise RowError(reasons.WRONG_TYPE, f"{field}[{position}]", "every response must be a non-empty string")
        scores = by.startswith("score")
        return field, texts, keys if scores else [-k for k in keys], scores

    def _convert(self, record):
        prompt = _prompt(record)
        field, texts, keys, scores = self._responses(record)
        answers = [render_answer(t) if prompt.messages is not None else t for t in texts]
        self.labels[f"{len(answers)} responses"] += 1
        conversion = Conversion(rows_paired=1)
        for i, j in itertools.combinations(range(len(answers)), 2):
            if keys[i] == keys[j]:
                continue
            better, worse = (i, j) if keys[i] > keys[j] else (j, i)
            margin = keys[better] - keys[worse] if scores else None
            conversion.pairs_made += 1
            try:
                conversion.examples.append(self._pair(record, prompt, answers[better], answers[worse], margin,
                                                      names=(f"{field}[{better}]", f"{field}[{worse}]")))
            except RowError as error:
                conversion.rejects.append(Reject(record.ref, error.reason, error.field, error.detail))
        if conversion.pairs_made == 0:
            return Conversion(rejects=[Reject(record.ref, reasons.ALL_TIED, field,
                                              "every response has the same rank or score: no pair")])
        return conversion


class Unpaired(Converter):
    """Holds every row until the end, then pairs good and bad completions of the same prompt."""

    def __init__(self, instruction, system_prompt=None):
        super().__init__(instruction, system_prompt)
        self.groups: dict[str, dict[bool, list[tuple[Prompt, str, RawRecord]]]] = {}  # by prompt text

    def _convert(self, record):
        prompt = _prompt(record)
        completion = _answer_text(record, "completion", prompt.messages is not None)
        good = fields.label(record)
        self.labels["label=true" if good else "label=false"] += 1
        self.groups.setdefault(prompt.text, {True: [], False: []})[good].append((prompt, completion, record))
        return Conversion()

    def finish(self) -> Conversion:
        conversion = Conversion()
        for group in self.groups.values():
            goods, bads = group[True], group[False]
            if not goods or not bads:
                missing = "false" if goods else "true"
                for _, _, record in goods + bads:
                    conversion.rejects.append(Reject(record.ref, reasons.NO_PARTNER, "label",
                                                     f"no completion labelled {missing} for this prompt: no pair"))
                continue
            conversion.rows_paired += len(goods) + len(bads)
            for (prompt, chosen, record), (_, rejected, _) in itertools.product(goods, bads):
                conversion.pairs_made += 1
                try:
                    conversion.examples.append(self._pair(record, prompt, chosen, rejected,
                                                          names=("completion", "completion")))
                except RowError as error:
                    conversion.rejects.append(Reject(record.ref, error.reason, error.field, error.detail))
        self.groups.clear()
        return conversion


class PromptConverter(Converter):
    """Prompt rows of one layout: the prompt read from the fields `PROMPT_SOURCES`, every other field a column."""

    PROMPT_SOURCES: tuple[str, ...] = ()

    def _convert(self, record):
        prompt = self._prompt(record)
        columns = _checked_columns(self._columns(record))
        return Conversion(examples=[self._prompt_row(record, prompt, columns)])

    def _prompt(self, record) -> Prompt:
        raise NotImplementedError

    def _columns(self, record) -> dict:
        columns = {name: value for name, value in record.value.items()
                   if name not in self.PROMPT_SOURCES and fields.present(record, name)}
        if GROUND_TRUTH in columns:
            fields.ground_truth(record)
        return columns


class TextPrompts(PromptConverter):
    PROMPT_SOURCES = ("input_text",)

    def _prompt(self, record):
        return _prompt(record, "input_text")


class FieldPrompts(PromptConverter):
    PROMPT_SOURCES = PROMPT_FIELDS

    def _prompt(self, record):
        return _prompt(record)


class ChatPrompts(PromptConverter):
    PROMPT_SOURCES = ("messages", "context")

    def _prompt(self, record):
        return _vertex_chat_prompt(record)


class Gsm8kPrompts(PromptConverter):
    """GSM8K's rows: the question as the user's message; the answer's final number as the ground truth."""

    PROMPT_SOURCES = ("question",)

    def _prompt(self, record):
        return chat_prompt([Message(USER, fields.text(record, "question"))])

    def _columns(self, record):
        columns = super()._columns(record)
        if GROUND_TRUTH not in columns:
            truth = gsm8k_final_answer(fields.text(record, "answer"))
            if truth is None:
                raise RowError(reasons.BAD_GROUND_TRUTH, "answer",
                               f"'answer' does not end in '{GSM8K_MARKER} N' (GSM8K's final answer, a number): "
                               "no ground truth; give such rows as prompt + ground_truth")
            columns[GROUND_TRUTH] = truth
        return columns


def _checked_columns(columns: dict) -> dict:
    """`columns`, when a reward function can be called with them and they can be written as UTF-8 JSON."""
    size = 0
    for name, value in columns.items():
        if name in CALL_ARGUMENTS:
            raise RowError(reasons.RESERVED_COLUMN, name,
                           f"the column '{name}' is named like an argument reward functions are called with "
                           f"({', '.join(CALL_ARGUMENTS)}); rename it")
        try:
            size += len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        except TypeError:
            raise RowError(reasons.WRONG_TYPE, name, f"the column '{name}' holds a {type(value).__name__}, "
                                                     "which cannot be passed on as JSON") from None
        except UnicodeEncodeError as error:
            raise RowError(reasons.NOT_UTF8, name, f"the column '{name}' holds a lone surrogate "
                                                   f"(\\u{ord(error.object[error.start]):04x}), which UTF-8 "
                                                   "cannot encode") from None
    if size > MAX_COLUMNS_BYTES:
        raise RowError(reasons.ROW_TOO_LARGE, ", ".join(columns),
                       f"the columns passed on to the reward function take {size} bytes as JSON, over "
                       f"{MAX_COLUMNS_BYTES}; leave out those it does not need")
    return columns


PREFERENCE_CONVERTERS = {VERTEX_TEXT: VertexText, VERTEX_CHAT: VertexChat, EXPLICIT: Explicit,
                         IMPLICIT: Implicit, SCORED: Scored, RANKING: Ranking, UNPAIRED: Unpaired}


def preference_converter(layout: str, instruction: str | None, system_prompt: str | None = None) -> Converter:
    return PREFERENCE_CONVERTERS[layout](instruction, system_prompt)


PROMPT_CONVERTERS = {VERTEX_TEXT: TextPrompts, PROMPT_FIELD_FORMAT: FieldPrompts, VERTEX_CHAT: ChatPrompts,
                     GSM8K: Gsm8kPrompts}


def prompt_converter(layout: str, instruction: str | None, system_prompt: str | None = None) -> Converter:
    return PROMPT_CONVERTERS[layout](instruction, system_prompt)
