"""Rewards computed by code instead of a reward model (verifiable rewards), called the way TRL calls them.

The `reward_function` parameter is empty (the trained reward model scores), a built-in name, or a
user's function as `path/to/file.py:name` or `package.module:name`. A function takes TRL's
reward-function signature, so one written for TRL's GRPOTrainer works unchanged:

    f(completions, prompts=..., completion_ids=..., trainer_state=..., log_extra=..., log_metric=...,
      **dataset_columns) -> list[float | None]

`load_reward_function` resolves the parameter (and reads which columns the function cannot do
without, for `check_columns` to fail before any training). `score_completions` calls it exactly as
TRL 1.16's `GRPOTrainer._calculate_rewards` does: every argument by keyword, one list entry per
completion (a prompt repeated for each of its completions), completions as strings for text prompts
and as `[{"role": "assistant", "content": text}]` for chat prompts, each column of the prompt rows
(`columns` of the canonical rows, see components/common/data/formats.py) as a keyword argument
holding one value per completion, and async functions awaited. A reward of None means "not applicable
to this completion" and becomes NaN, as in TRL; what the function raises, or a result that is not one
number or None per completion, fails the step with one line naming the function. TRL's
`environments` keyword (its tool-calling environments) is not passed: there are none here.

Built-ins, each 1.0 for the right answer, 0.0 for a wrong or missing one, and None (not applicable)
for a row without a `ground_truth`; answers compare as numbers when both are numbers
(components/common/data/answers.py says exactly which forms count):
- `boxed-answer`: the last complete `\\boxed{...}` of the completion equals the ground truth.
- `gsm8k-answer`: the number after the completion's last `####` equals the ground truth; None also
  when the ground truth is not a number.
"""

import asyncio
import importlib
import importlib.util
import inspect
import math
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.data.answers import as_number, gsm8k_final_answer, last_boxed, normalized, same_answer
from components.common.data.records import GROUND_TRUTH
from components.common.data.transcripts import Prompt
from components.common.errors import UserInputError

# The keyword arguments of every call besides the columns; no column may take one of these names.
CALL_ARGUMENTS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")
SPEC_FORMS = "a built-in ({builtins}), path/to/file.py:name or package.module:name"
MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _text(completion) -> str:
    """A completion's text: the string, or the contents of its messages (chat prompts)."""
    if isinstance(completion, str):
        return completion
    return "\n".join(message["content"] for message in completion)


def _truth(value) -> str | None:
    """A ground truth as text; None when the row has none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def boxed_answer(completions, ground_truth, **kwargs) -> list[float | None]:
    """1.0 when the completion's last `\\boxed{...}` gives the ground truth, 0.0 when not or when it has none."""
    rewards = []
    for completion, value in zip(completions, ground_truth, strict=True):
        truth, answer = _truth(value), last_boxed(_text(completion))
        rewards.append(None if truth is None else float(answer is not None and same_answer(answer, truth)))
    return rewards


def gsm8k_answer(completions, ground_truth, **kwargs) -> list[float | None]:
    """1.0 when the number after the completion's last `####` equals the ground truth, 0.0 when not or
    when there is none; None when the ground truth is missing or not a number."""
    rewards = []
    for completion, value in zip(completions, ground_truth, strict=True):
        truth = _truth(value)
        expected = as_number(normalized(truth)) if truth is not None else None
        answer = gsm8k_final_answer(_text(completion))
        rewards.append(None if expected is None else float(answer is not None and as_number(answer) == expected))
    return rewards


BUILTINS: dict[str, Callable] = {"boxed-answer": boxed_answer, "gsm8k-answer": gsm8k_answer}


@dataclass(frozen=True)
class RewardFunction:
    """A resolved reward function: its name as the user wrote it (for messages), the callable, and the
    columns it cannot do without (its keyword parameters without a default beyond `CALL_ARGUMENTS`)."""

    name: str
    function: Callable
    columns: tuple[str, ...] = ()


@dataclass
class RewardLogs:
    """What reward functions log through TRL's `log_metric` (scalars averaged per step) and `log_extra`
    (extra columns of the completions table); TRL functions may call both without checking for None."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, list] = field(default_factory=dict)

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list) -> None:
        self.extra.setdefault(column, []).extend(values)


def _last_line(error: BaseException) -> str:
    """The last line of the error's traceback: "KeyError: 'answer'"."""
    return traceback.format_exception_only(type(error), error)[-1].strip()


def _raised_at(error: BaseException) -> str:
    """Where the error was raised, " (at file.py:line)": the innermost frame outside this module, if any."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename != __file__]
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


def _forms() -> str:
    return SPEC_FORMS.format(builtins=", ".join(BUILTINS))


def _load_file(spec: str, path: Path):
    if not path.is_file():
        raise UserInputError(f"reward_function {spec!r}: the file {path} does not exist; expected {_forms()}")
    module_name = f"rlhf_reward_function_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # as an import would, so that dataclasses and pickling inside work
    if str(path.resolve().parent) not in sys.path:
        sys.path.append(str(path.resolve().parent))  # the file may import modules beside it
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise UserInputError(f"reward_function {spec!r}: {path} could not be loaded: {_last_line(error)}") from error
    return module


def _load_module(spec: str, name: str):
    if not MODULE_PATH.fullmatch(name):
        raise UserInputError(f"reward_function {spec!r}: {name!r} is neither a .py file nor a module name; "
                             f"expected {_forms()}")
    try:
        return importlib.import_module(name)
    except Exception as error:
        missing = isinstance(error, ModuleNotFoundError) and error.name and f"{name}.".startswith(f"{error.name}.")
        hint = " (a file is given as path/to/file.py:name)" if missing else ""
        raise UserInputError(f"reward_function {spec!r}: the module {name} could not be imported: "
                             f"{_last_line(error)}{hint}") from error


def _attribute(spec: str, module, name: str):
    value = module
    for part in name.split("."):
        if not hasattr(value, part):
            defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                             and getattr(v, "__module__", None) == module.__name__)
            raise UserInputError(f"reward_function {spec!r}: {module.__name__} has no {name!r}; it defines "
                                 f"{', '.join(defined) or 'no public function'}")
        value = getattr(value, part)
    if not callable(value):
        raise UserInputError(f"reward_function {spec!r}: {name} is a {type(value).__name__}, not a function")
    return value


def _required_columns(spec: str, function: Callable) -> tuple[str, ...]:
    """The columns `function` needs; fails when it cannot be called as TRL calls a reward function."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some built-in callables have no signature to read: trust them
        return ()
    needed = tuple(p.name for p in signature.parameters.values() if p.default is p.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in CALL_ARGUMENTS)
    try:
        signature.bind(**dict.fromkeys(CALL_ARGUMENTS + needed))
    except TypeError as error:
        raise UserInputError(
            f"reward_function {spec!r} cannot be called as a reward function ({error}): it is called with the "
            f"keywords {', '.join(CALL_ARGUMENTS)} and one per column of the prompt data; give it **kwargs"
        ) from None
    return needed


def names_a_file(target: str) -> bool:
    """Whether the part of a spec before its last colon is a file (path/to/file.py), not a module name."""
    return target.endswith(".py") or "/" in target or "\\" in target


def load_reward_function(spec: str) -> RewardFunction | None:
    """The reward function `spec` names; None for an empty spec (the trained reward model scores).

    Raises UserInputError, listing the accepted forms, for an unknown built-in, a missing file or
    module, a missing attribute, something that is not callable, or a signature TRL could not call.
    """
    spec = (spec or "").strip()
    if not spec:
        return None
    if spec in BUILTINS:
        function = BUILTINS[spec]
    else:
        target, colon, name = spec.rpartition(":")
        if not colon or not target or not name:
            raise UserInputError(f"reward_function {spec!r} is not a built-in and not of the form file.py:name or "
                                 f"module:name; expected {_forms()}")
        module = _load_file(spec, Path(target)) if names_a_file(target) else _load_module(spec, target)
        function = _attribute(spec, module, name)
    return RewardFunction(spec, function, _required_columns(spec, function))


def check_columns(reward: RewardFunction, columns: Sequence[Mapping[str, Any]], source: str) -> None:
    """Fails before any training when no prompt row of `source` has a column `reward` cannot do without."""
    present = {name for row in columns for name in row}
    for name in reward.columns:
        if name not in present:
            hint = ("; give rows as prompt + ground_truth, or GSM8K's question + answer ending in '#### N'"
                    if name == GROUND_TRUTH else "")
            raise UserInputError(f"reward_function {reward.name!r} needs the column {name!r}, which no prompt "
                                 f"of {source} has{hint}")


def _column_arguments(columns: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """One keyword argument per column, one value per completion; None where a row lacks the column."""
    names = dict.fromkeys(name for row in columns for name in row)
    return {name: [row.get(name) for row in columns] for name in names}


async def _awaited(awaitable):
    return await awaitable


def _as_float(value) -> float | None:
    if isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of more than one value
        return None


def _rewards(name: str, result, count: int) -> list[float]:
    """The function's result as floats, None and NaN as NaN; anything else it could return is an error."""
    expected = f"a list of {count} rewards (a number, or None for not applicable), one per completion"
    if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
        raise UserInputError(f"reward function {name} returned a {type(result).__name__}; expected {expected}")
    values = list(result)
    if len(values) != count:
        raise UserInputError(f"reward function {name} returned {len(values)} rewards for {count} completions; "
                             f"expected {expected}")
    rewards = []
    for position, value in enumerate(values):
        reward = math.nan if value is None else _as_float(value)
        if reward is None or math.isinf(reward):
            raise UserInputError(f"reward function {name} returned {value!r:.40} (a {type(value).__name__}) for "
                                 f"completion {position}; expected {expected}, each finite")
        rewards.append(reward)
    return rewards


def score_completions(reward: RewardFunction, prompts: Sequence[Prompt], completions: Sequence[str],
                      completion_ids: Sequence[Sequence[int]], columns: Sequence[Mapping[str, Any]], *,
                      conversational: bool, trainer_state: Any = None,
                      logs: RewardLogs | None = None) -> list[float]:
    """One reward per completion, NaN where the function says None (not applicable), as TRL passes them.

    All sequences have one entry per completion: `prompts` and `columns` (each row's `columns`) repeat for
    every completion of a prompt; `completions` are the decoded texts and `completion_ids` their token
    ids, without padding, ending with the end token when the completion ended. `conversational` (the
    policy reads prompts through its chat template) gives TRL's chat shapes: prompts as message lists (a
    text prompt as one user message), completions as one assistant message. `trainer_state` is passed
    as given (TRL passes transformers' TrainerState: `global_step`, `max_steps`, `epoch`); `logs`
    collects what the function logs. Any exception from the function, or a result that is not one
    number or None per completion, becomes one UserInputError naming the function.
    """
    if not len(prompts) == len(completion_ids) == len(columns) == len(completions):
        raise ValueError(f"one prompt, token-id list and columns row per completion: got {len(prompts)}, "
                         f"{len(completion_ids)}, {len(columns)} for {len(completions)} completions")
    if conversational:
        prompt_values = [prompt.conversation() for prompt in prompts]
        completion_values = [[{"role": "assistant", "content": text}] for text in completions]
    else:
        prompt_values, completion_values = [prompt.text for prompt in prompts], list(completions)
    logs = logs if logs is not None else RewardLogs()
    try:
        result = reward.function(prompts=prompt_values, completions=completion_values,
                                 completion_ids=[list(ids) for ids in completion_ids], **_column_arguments(columns),
                                 trainer_state=trainer_state, log_extra=logs.log_extra, log_metric=logs.log_metric)
        if inspect.isawaitable(result):  # TRL accepts async reward functions too
            result = asyncio.run(_awaited(result))
    except Exception as error:
        raise UserInputError(f"reward function {reward.name} failed: {_last_line(error)}{_raised_at(error)}") from error
    return _rewards(reward.name, result, len(completions))
