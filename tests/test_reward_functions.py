"""Verifiable rewards: the built-ins on tricky answers, user functions written for TRL, and the call's checks."""

import math
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.common.canonical_data import PROMPT_FIELDS, read_canonical_rows
from components.common.data.records import COLUMNS_FIELD
from components.common.data.transcripts import Message, Prompt
from components.common.errors import UserInputError
from components.common.reward_functions import (
    BUILTINS,
    RewardFunction,
    RewardLogs,
    check_columns,
    load_reward_function,
    score_completions,
)
from validate_data_calls import validate

SAMPLES = Path(__file__).parent / "data_samples"

TEXT_PROMPT = Prompt("What is 7 * 8?")
CHAT_PROMPT = Prompt("Be brief.\n\nHuman: What is 7 * 8?\n\nAssistant:",
                     (Message("system", "Be brief."), Message("user", "What is 7 * 8?")))


def score(reward, completions, columns=None, prompt=TEXT_PROMPT, conversational=False, **options):
    """`reward`'s scores of `completions`, all answers to `prompt`, with `columns` the same for each unless a list."""
    columns = columns if isinstance(columns, list) else [columns or {}] * len(completions)
    ids = [[len(text), 2] for text in completions]
    return score_completions(reward, [prompt] * len(completions), completions, ids, columns,
                             conversational=conversational, **options)


def as_reward(function) -> RewardFunction:
    """A test's own callable as a loaded reward function."""
    return RewardFunction(function.__name__, function)


def write_module(directory, name: str, source: str):
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


# (completion, ground truth, reward)
BOXED_CASES = [
    (r"7 * 8 = 56, so the answer is \boxed{56}.", "56", 1.0),
    (r"\boxed{56.00}", 56, 1.0),  # numbers as numbers, an integer ground truth
    (r"\boxed{1,000}", "1000", 1.0),  # commas between groups of three digits
    (r"\boxed{1{,}000}", "1,000", 1.0),
    (r"\boxed{1,5}", "1.5", 0.0),  # not a thousands comma: compared as text
    (r"Half: \boxed{\frac{1}{2}}", "0.5", 1.0),  # nested braces, exact fractions
    (r"\boxed{\dfrac{2}{4}}", r"\frac{1}{2}", 1.0),
    (r"\boxed{-\frac{3}{4}}", "-0.75", 1.0),
    (r"\boxed{18 \text{ dollars}}", "18", 1.0),  # a unit after the number
    (r"\boxed{\$18}", "$18.00", 1.0),
    (r"\boxed{50\%}", "50", 1.0),
    (r"\boxed{\text{Canberra}}", "Canberra", 1.0),  # words compared as text
    (r"\boxed{x + 1}", "x+1", 1.0),
    (r"\boxed{1 + x}", "x+1", 0.0),  # nothing symbolic
    (r"First \boxed{3}, then on reflection \boxed{4}", "4", 1.0),  # the last one counts
    (r"\boxed{56} and then \boxed{5", "56", 1.0),  # a \boxed{ cut off does not count
    ("The answer is 56.", "56", 0.0),  # no \boxed{}: no answer
    (r"\boxed{}", "56", 0.0),
    (r"\boxed{56}", None, None),  # no ground truth: not applicable
    (r"\boxed{56}", "  ", None),
]


@pytest.mark.parametrize("completion, truth, expected", BOXED_CASES)
def test_boxed_answer(completion, truth, expected):
    assert BUILTINS["boxed-answer"]([completion], ground_truth=[truth]) == [expected]


GSM8K_CASES = [
    ("48 / 2 = 24 in May, 48 + 24 = 72 in all.\n#### 72", "72", 1.0),
    ("#### 72.0", 72, 1.0),
    ("#### 1,200", "1200", 1.0),
    ("So it costs $11.75 in all.\n#### $11.75", "11.75", 1.0),
    ("#### 72 clips", "72", 1.0),  # words after the number are ignored
    ("#### 72.", "72", 1.0),  # and so is a full stop
    ("#### 70\nWait, that is wrong.\n#### 72", "72", 1.0),  # the last #### counts
    ("#### 12,5", "125", 0.0),  # not a number: a comma not between groups of three digits
    ("The answer is 72.", "72", 0.0),  # no ####: no answer
    ("#### seventy-two", "72", 0.0),
    ("#### 71", "72", 0.0),
    ("#### 72", None, None),  # no ground truth
    ("#### 72", "Canberra", None),  # a ground truth that is not a number: not applicable
]


@pytest.mark.parametrize("completion, truth, expected", GSM8K_CASES)
def test_gsm8k_answer(completion, truth, expected):
    assert BUILTINS["gsm8k-answer"]([completion], ground_truth=[truth]) == [expected]


def test_builtins_read_chat_shaped_completions_and_get_nan_for_not_applicable():
    reward = load_reward_function("gsm8k-answer")
    assert reward.columns == ("ground_truth",)
    rewards = score(reward, ["#### 56", "#### 54", "#### 56"], [{"ground_truth": "56"}, {"ground_truth": "56"}, {}],
                    prompt=CHAT_PROMPT, conversational=True)
    assert rewards[:2] == [1.0, 0.0] and math.isnan(rewards[2])


def test_an_empty_spec_means_the_reward_model_and_bad_specs_list_the_accepted_forms(tmp_path):
    assert load_reward_function("") is None and load_reward_function("  ") is None
    write_module(tmp_path, "rewards", """
        THRESHOLD = 0.5

        def reward_len(completions, **kwargs):
            return [0.0 for _ in completions]

        def positional_only(completions, /, **kwargs):
            return []

        def no_kwargs(completions):
            return []
    """)
    write_module(tmp_path, "broken", "def f(:\n")
    cases = {
        "boxed_answer": "not a built-in and not of the form file.py:name or module:name; expected a built-in "
                        "(boxed-answer, gsm8k-answer), path/to/file.py:name or package.module:name",
        f"{tmp_path}/missing.py:f": f"the file {tmp_path}/missing.py does not exist",
        f"{tmp_path}/rewards.py:reward_lenn": "has no 'reward_lenn'; it defines no_kwargs, positional_only, reward_len",
        f"{tmp_path}/rewards.py:THRESHOLD": "THRESHOLD is a float, not a function",
        f"{tmp_path}/rewards.py:no_kwargs": "cannot be called as a reward function (got an unexpected keyword "
                                            "argument 'prompts')",
        f"{tmp_path}/rewards.py:positional_only": "cannot be called as a reward function",
        f"{tmp_path}/broken.py:f": "could not be loaded: SyntaxError",
        "no_such_package.rewards:f": "the module no_such_package.rewards could not be imported: ModuleNotFoundError: "
                                     "No module named 'no_such_package' (a file is given as path/to/file.py:name)",
        "not a module:f": "'not a module' is neither a .py file nor a module name",
    }
    for spec, message in cases.items():
        with pytest.raises(UserInputError) as caught:
            load_reward_function(spec)
        assert message in str(caught.value) and "\n" not in str(caught.value), spec


def test_a_function_written_for_trl_works_unchanged_from_a_file(tmp_path):
    path = write_module(tmp_path, "trl_rewards", """
        def reward_len(completions, **kwargs):
            return [-abs(20 - len(completion)) for completion in completions]

        def correct_and_polite(prompts, completions, ground_truth, **kwargs):
            # written for a conversational dataset: prompts and completions are message lists
            return [float(completion[0]["content"].strip().endswith(str(truth))) + 0.5 * (prompt[0]["role"] == "system")
                    for prompt, completion, truth in zip(prompts, completions, ground_truth)]
    """)
    reward_len = load_reward_function(f"{path}:reward_len")
    assert reward_len.name == f"{path}:reward_len" and reward_len.columns == ()
    assert score(reward_len, ["x" * 20, "short", "x" * 26]) == [0.0, -15.0, -6.0]
    correct = load_reward_function(f"{path}:correct_and_polite")
    assert correct.columns == ("ground_truth",)
    assert score(correct, ["It is 56", "It is 54"], {"ground_truth": 56}, prompt=CHAT_PROMPT,
                 conversational=True) == [1.5, 0.5]


def test_a_function_from_a_module_and_async_functions(tmp_path, monkeypatch):
    write_module(tmp_path, "my_rewards_pkg_module", """
        import asyncio

        def constant(completions, **kwargs):
            return [1] * len(completions)

        async def judge(completions, **kwargs):
            await asyncio.sleep(0)
            return [0.25 for _ in completions]
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rewards_pkg_module", raising=False)
    assert score(load_reward_function("my_rewards_pkg_module:constant"), ["a", "b"]) == [1.0, 1.0]
    assert score(load_reward_function("my_rewards_pkg_module:judge"), ["a"]) == [0.25]
    assert score(load_reward_function("components.common.reward_functions:boxed_answer"), [r"\boxed{2}"],
                 {"ground_truth": "2"}) == [1.0]


def test_the_call_passes_what_trl_passes(tmp_path):
    """Every keyword, its shape and value, as TRL 1.16's GRPOTrainer._calculate_rewards passes them."""
    from accelerate import PartialState
    from transformers import TrainerState
    from trl import GRPOTrainer

    PartialState()  # TRL's warning about unscorable rows logs through accelerate
    calls = []

    def recorder(completions, **kwargs):
        calls.append({"completions": completions, **kwargs})
        kwargs["log_metric"]("seen", len(completions))
        return [None, 1]

    state = TrainerState(global_step=3, max_steps=10)
    rows = [{"ground_truth": "56", "id": 7}, {"ground_truth": "56", "id": 7}]  # one prompt, two completions
    ids = [[5, 6, 2], [7]]
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(device="cpu", is_main_process=True), args=SimpleNamespace(report_to=[]),
        state=state, reward_funcs=[recorder], reward_processing_classes=[None], reward_func_names=["recorder"],
        environments=None, _log_completion_extra=lambda column, values: None, _log_metric=lambda name, value: None)
    for conversational in (False, True):
        prompt = CHAT_PROMPT.conversation() if conversational else CHAT_PROMPT.text
        texts = [" 56", " 54"]
        completions = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
        trl_rewards = GRPOTrainer._calculate_rewards(trainer, [{"prompt": prompt, **row} for row in rows],
                                                     [prompt, prompt], completions, ids)
        logs = RewardLogs()
        ours = score_completions(as_reward(recorder), [CHAT_PROMPT] * 2, texts, ids, rows,
                                 conversational=conversational, trainer_state=state, logs=logs)
        trl_call, our_call = calls[-2], calls[-1]
        assert set(our_call) == set(trl_call)
        for name in set(trl_call) - {"log_extra", "log_metric"}:
            assert our_call[name] == trl_call[name], name
        assert math.isnan(ours[0]) and math.isnan(trl_rewards[0, 0]) and ours[1] == trl_rewards[1, 0] == 1.0
        assert logs.metrics == {"seen": [2]}


@pytest.mark.parametrize("result, message", [
    ([1.0], "returned 1 rewards for 2 completions; expected a list of 2 rewards (a number, or None for not "
            "applicable), one per completion"),
    (0.5, "returned a float; expected a list of 2 rewards"),
    ("1.0 0.0", "returned a str; expected a list"),
    ([1.0, "good"], "returned 'good' (a str) for completion 1"),
    ([1.0, [1.0]], "returned [1.0] (a list) for completion 1"),
    ([float("inf"), 1.0], "returned inf (a float) for completion 0"),
])
def test_a_wrong_result_fails_with_one_line_naming_the_function(result, message):
    reward = as_reward(lambda completions, **kwargs: result)
    with pytest.raises(UserInputError) as caught:
        score(reward, ["a", "b"])
    assert str(caught.value).startswith("reward function <lambda> returned") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_numbers_of_any_kind_and_none_are_rewards():
    import numpy
    import torch

    reward = as_reward(lambda completions, **kwargs: (True, numpy.float32(0.5), torch.tensor(2.0),
                                                                    None, float("nan")))
    rewards = score(reward, list("abcde"))
    assert rewards[:3] == [1.0, 0.5, 2.0] and all(math.isnan(r) for r in rewards[3:])


def test_an_exception_in_user_code_becomes_one_line_with_its_last_line_and_place(tmp_path):
    path = write_module(tmp_path, "failing", """
        def needs_answer(completions, **kwargs):
            return [float(c == kwargs["answer"]) for c in completions]
    """)
    with pytest.raises(UserInputError) as caught:
        score(load_reward_function(f"{path}:needs_answer"), ["a"], {"ground_truth": "1"})
    assert str(caught.value) == f"reward function {path}:needs_answer failed: KeyError: 'answer' (at failing.py:3)"


def test_columns_a_function_cannot_do_without_are_checked_before_training():
    reward = load_reward_function("boxed-answer")
    check_columns(reward, [{"id": 1}, {"ground_truth": "2"}], "prompts.jsonl")
    with pytest.raises(UserInputError, match=r"reward_function 'boxed-answer' needs the column 'ground_truth', which "
                                             r"no prompt of prompts.jsonl has; give rows as prompt \+ ground_truth"):
        check_columns(reward, [{"id": 1}, {}], "prompts.jsonl")


def test_prepared_gsm8k_prompts_are_scored_by_gsm8k_answer(tmp_path):
    """The data stage's canonical rows, read back as the RL stage reads them, feed the built-in."""
    code, out = validate(tmp_path, prompt_dataset=str(SAMPLES / "gsm8k_prompts.jsonl"))
    rows = read_canonical_rows(out / "prompt_data" / "train.jsonl", PROMPT_FIELDS, "test")
    prompts, columns = [Prompt.from_row(r) for r in rows], [r.get(COLUMNS_FIELD, {}) for r in rows]
    reward = load_reward_function("gsm8k-answer")
    check_columns(reward, columns, "gsm8k_prompts.jsonl")
    right = [f"So the answer is:\n#### {c['answer'].rpartition('#### ')[2]}" for c in columns]  # "1,200" as written
    wrong = ["#### 0"] * len(rows)
    ids = [[1]] * len(rows)
    assert code == 0 and len(rows) == 6
    assert score_completions(reward, prompts, right, ids, columns, conversational=True) == [1.0] * 6
    assert score_completions(reward, prompts, wrong, ids, columns, conversational=False) == [0.0] * 6
