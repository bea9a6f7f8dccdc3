"""The supervised fine-tuning data: what `sft_dataset` names, read into (prompt, completion) examples
whose books balance (every row is used, rejected with its file, line and field, or a duplicate).

`sft_dataset` is one of:
- empty: no supervised fine-tuning;
- `preference:chosen`: the chosen answer of every training pair the preference-data stage prepared
<<<<<<< HEAD
  (its train.jsonl), under the pair's prompt as that stage wrote it (instruction applied, a
  conversation kept as its messages);
- a dataset in any container and location the data layer reads (components/common/data/sources.py,
  and hf_datasets.py for a Hugging Face dataset `hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]`),
=======
  (its train.jsonl), under the pair's prompt as that stage wrote it (instruction and system prompt
  applied, a conversation kept as its messages);
- a dataset in any container and location the data layer reads (components/common/data/sources.py),
>>>>>>> issue-16-real-model
  whose rows are one of
  - `prompt` (or `query`, or Vertex's `input_text`) + `completion` (or Vertex's `output_text`):
    strings, or the prompt as messages ending with the user's and the completion as the assistant's
    message(s). A plain-text prompt and its completion are joined as they are, so the prompt carries
    its own separator (as in the reward model's data);
  - `messages` (role or Vertex's author, and content; optional Vertex `context`): a whole
    conversation ending with the assistant's message, which is the completion; every message before
    it is the prompt (earlier assistant turns are context, not trained on).

A prompt without a system message gets `system_prompt` as one, as the data stages give it to theirs
(components/common/data/transcripts.py `Prompt.with_system_prompt`), so that the model is tuned on
prompts as every later stage shows them; `instruction` is not applied (Vertex puts it before the
inputs of its prompt and preference datasets only). Rows are read by the data layer's readers and converters; bad rows count against
`max_bad_row_fraction` as in the data stages. `check_sft_dataset` reads a dataset as this stage does,
without a model or training, for the checks before a run.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from components.common.canonical_data import PREFERENCE_FIELDS, read_canonical_rows
from components.common.data import fields, formats, reasons
from components.common.data.fields import RowError
from components.common.data.ledger import Ledger
from components.common.data.loading import _check_usable, _records
from components.common.data.preparation import holds_data
from components.common.data.records import Conversion, RowRef
from components.common.data.transcripts import (
    ASSISTANT,
    MESSAGES_FIELD,
    Message,
    MessageError,
    Prompt,
    chat_prompt,
    render_answer,
)
from components.common.errors import UserInputError

PREFERENCE_PREFIX = "preference:"
PREFERENCE_CHOSEN = "preference:chosen"  # the chosen answers of the prepared preference pairs
SFT_KIND = "sft"  # the Ledger's kind
PROMPT_FIELDS = (*formats.PROMPT_FIELDS, "input_text")
COMPLETION_FIELDS = ("completion", "output_text")
CONVERSATION_FIELD = "messages"
PROMPT_COMPLETION, CONVERSATION = "prompt-completion", "messages"
SFT_FIELDS = ("prompt", "completion")  # of the canonical rows the training function reads
ACCEPTED_ROWS = "prompt (or query, input_text) + completion (or output_text), or messages ending with the assistant's"


@dataclass
class SupervisedExample:
    """One example: the prompt (text, and messages when it came as a conversation) and its completion,
    as the data layer's canonical rows hold them (a chat prompt's answer starts with a space)."""

    TEXT_FIELDS: ClassVar = SFT_FIELDS

    prompt: str
    completion: str
    ref: RowRef
    prompt_messages: tuple[Message, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"prompt": self.prompt, "completion": self.completion}
        if self.prompt_messages is not None:
            row[MESSAGES_FIELD] = [message.to_json() for message in self.prompt_messages]
        return row

    def key(self) -> tuple[str, str]:
        return (self.prompt, self.completion)


class SupervisedRows(formats.Converter):
    """Rows of either layout, recognised row by row; `layouts` counts the rows of each."""

    def __init__(self, system_prompt: str | None = None):
        super().__init__(instruction=None, system_prompt=system_prompt)
        self.layouts: dict[str, int] = {}

    def _convert(self, record):
        if any(fields.present(record, name) for name in COMPLETION_FIELDS):
            layout, (prompt, completion, source) = PROMPT_COMPLETION, self._prompt_completion(record)
        elif fields.present(record, CONVERSATION_FIELD):
            layout, (prompt, completion, source) = CONVERSATION, self._conversation(record)
        else:
            raise RowError(reasons.MISSING_FIELD, "completion",
                           f"the row has neither a completion nor messages; expected {ACCEPTED_ROWS}")
        prompt = prompt.with_system_prompt(self.system_prompt)
        example = SupervisedExample(prompt.text, completion, record.ref, prompt.messages)
        example = formats._usable(example, {"completion": source})
        self.layouts[layout] = self.layouts.get(layout, 0) + 1
        return Conversion(examples=[example])

    @staticmethod
    def _prompt_completion(record) -> tuple[Prompt, str, str]:
        prompt = formats._prompt(record, fields.first_present(record, PROMPT_FIELDS))
        source = fields.first_present(record, COMPLETION_FIELDS)
        return prompt, formats._answer_text(record, source, prompt.messages is not None), source

    @staticmethod
    def _conversation(record) -> tuple[Prompt, str, str]:
        messages = fields.messages(record, CONVERSATION_FIELD)
        context = fields.text(record, "context") if fields.present(record, "context") else None
        if messages[-1].role != ASSISTANT:
            raise RowError(reasons.BAD_MESSAGES, CONVERSATION_FIELD,
                           f"'{CONVERSATION_FIELD}': the last message must be the assistant's (the completion "
                           "trained on)")
        try:
            prompt = chat_prompt(messages[:-1], context)
        except MessageError as error:
            raise RowError(reasons.BAD_MESSAGES, CONVERSATION_FIELD, f"'{CONVERSATION_FIELD}': {error}") from None
        return prompt, render_answer(messages[-1].content), CONVERSATION_FIELD


@dataclass
class SupervisedData:
    examples: list[SupervisedExample]
    ledger: Ledger

    def summary(self) -> str:
        """The books in one line."""
        books = self.ledger
        return (f"{books.source}: {books.used} examples ({books.input_rows} rows read, {books.rejected} rejected, "
                f"{books.duplicates} duplicates; {books.layout})")

    def metrics(self) -> dict[str, int]:
        books = self.ledger
        return {"sft_rows_read": books.input_rows, "sft_rows_rejected": books.rejected,
                "sft_rows_duplicate": books.duplicates, "sft_examples": books.used}


def _account(ledger: Ledger, conversions) -> list[SupervisedExample]:
    """The examples of `conversions` (one per input row), duplicates left out, with the books kept."""
    examples, seen = [], set()
    for conversion in conversions:
        ledger.input_rows += 1
        ledger.rejects.extend(conversion.rejects)
        for example in conversion.examples:
            if example.key() in seen:
                ledger.duplicates += 1
            else:
                seen.add(example.key())
                examples.append(example)
    ledger.used = len(examples)
    return examples


def read_sft_file(source: str, max_bad_row_fraction: float, system_prompt: str | None = None) -> SupervisedData:
    """Every usable example of the dataset `source`.

    Raises UserInputError when it is empty, unusable, or has more bad rows than max_bad_row_fraction
    allows (the message sums the reasons and shows the first rows, with file, line and field).
    """
    names, records = _records(source)
    converter = SupervisedRows(system_prompt)
    ledger = Ledger(source, SFT_KIND, "", files=names)
    conversions = (Conversion(rejects=[r.error]) if r.error is not None else converter.convert(r) for r in records)
    examples = _account(ledger, conversions)
    ledger.layout = " + ".join(converter.layouts) or "none"
    _check_usable(ledger, max_bad_row_fraction)
    return SupervisedData(examples, ledger)


def read_chosen_answers(train_path: str | Path) -> SupervisedData:
    """The chosen answer of every prepared training pair in `train_path`, as an example of its prompt.

    Raises UserInputError when the run has no preference data (the file is missing or empty).
    """
    path = Path(train_path)
    if not holds_data(path):
        raise UserInputError(
            f"sft_dataset is '{PREFERENCE_CHOSEN}' but this run has no preference pairs (preference_dataset is "
            "empty): give a preference_dataset, or the supervised examples as an sft_dataset file"
        )
    rows = read_canonical_rows(path, PREFERENCE_FIELDS, needed_for=f"sft_dataset '{PREFERENCE_CHOSEN}'")
    ledger = Ledger(PREFERENCE_CHOSEN, SFT_KIND, "chosen answers of the training pairs", files=[str(path)])
    conversions = []
    for number, row in enumerate(rows, start=1):
        prompt = Prompt.from_row(row)
        example = SupervisedExample(prompt.text, row["chosen"], RowRef(str(path), number), prompt.messages)
        conversions.append(Conversion(examples=[example]))
    return SupervisedData(_account(ledger, conversions), ledger)


def read_sft_dataset(sft_dataset: str, preference_train_path: str | Path, max_bad_row_fraction: float,
                     system_prompt: str | None = None) -> SupervisedData | None:
    """The examples `sft_dataset` names (see the module's docstring), a prompt without a system message
    given `system_prompt`; None when it is empty.

    Raises UserInputError, its message starting with 'sft_dataset'.
    """
    spec = sft_dataset.strip()
    if not spec:
        return None
    if spec == PREFERENCE_CHOSEN:
        return read_chosen_answers(preference_train_path)
    if spec.startswith(PREFERENCE_PREFIX):
        raise UserInputError(f"sft_dataset '{spec}' is unknown: '{PREFERENCE_CHOSEN}' is the only preference "
                             "source (the chosen answers of the training pairs)")
    try:
        return read_sft_file(spec, max_bad_row_fraction, system_prompt)
    except UserInputError as error:
        raise UserInputError(f"sft_dataset: {error}") from None


def check_sft_dataset(sft_dataset: str, preference_dataset: str, max_bad_row_fraction: float) -> str | None:
    """What the checks before a run say about `sft_dataset`, read as this stage reads it (no model, no
    training); None when it is empty.

    Raises UserInputError, its message starting with 'sft_dataset'.
    """
    spec = sft_dataset.strip()
    if spec == PREFERENCE_CHOSEN:
        if not preference_dataset.strip():
            raise UserInputError(f"sft_dataset: '{PREFERENCE_CHOSEN}' needs a preference_dataset (its chosen "
                                 "answers are the examples); give one, or the examples as an sft_dataset file")
        return f"checked sft_dataset: {PREFERENCE_CHOSEN}, the chosen answers of preference_dataset's training pairs"
    data = read_sft_dataset(spec, "", max_bad_row_fraction)
    return None if data is None else f"checked sft_dataset: {data.summary()}"
