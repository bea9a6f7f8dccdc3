"""The arithmetic sample task: its data generator, parameters and tiny chat model."""

import json
import re

import pytest

from components.common.data.answers import last_boxed
from components.common.reward_functions import boxed_answer
from components.common.model_references import resolve_model_reference
from embedded_default import arithmetic
from embedded_default.arithmetic import generate as gen
from pipeline.parameters import PARAMETERS_BY_NAME

SHIPPED_FILES = {
    gen.PREFERENCE_FILE_NAME: arithmetic.PREFERENCE_FILE,
    gen.PROMPT_FILE_NAME: arithmetic.PROMPT_FILE,
    gen.EVAL_FILE_NAME: arithmetic.EVAL_FILE,
}
SMALL = gen.GeneratorConfig(seed=3, preference_rows=30, prompt_rows=40, eval_rows=10)
NUMBER = re.compile(r"\d+")


def read_rows(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def computed_answer(question: str) -> int:
    """The answer worked out again from the question's wording, independently of the generator."""
    a, b = (int(n) for n in NUMBER.findall(question))
    if re.search(r"buys \d+ more|in the afternoon|puts \d+ more", question):
        return a + b
    if re.search(r"gives \d+ to|takes \d+ of them|lost \d+ of them", question):
        return a - b
    if re.search(r"with \d+ \w+ in each|Each one holds", question):
        return a * b
    raise AssertionError(f"unknown problem {question!r}")


# --- generator -------------------------------------------------------------------------------


def test_same_seed_writes_the_same_bytes_and_another_seed_differs(tmp_path):
    first = gen.generate(tmp_path / "a", SMALL)
    second = gen.generate(tmp_path / "b", SMALL)
    other = gen.generate(tmp_path / "c", gen.GeneratorConfig(seed=4, preference_rows=30, prompt_rows=40, eval_rows=10))
    for name in SHIPPED_FILES:
        assert first[name].read_bytes() == second[name].read_bytes()
        assert first[name].read_bytes() != other[name].read_bytes()
    assert [len(read_rows(first[name])) for name in SHIPPED_FILES] == [30, 40, 10]


def test_shipped_data_equals_a_fresh_generation(tmp_path):
    fresh = gen.generate(tmp_path)
    for name, shipped in SHIPPED_FILES.items():
        assert shipped.read_bytes() == fresh[name].read_bytes(), (
            f"{shipped} is stale: run `python -m embedded_default.arithmetic.generate`"
        )


def test_prompt_rows_are_conversations_with_right_ground_truths():
    prompts, evals = read_rows(arithmetic.PROMPT_FILE), read_rows(arithmetic.EVAL_FILE)
    assert len(prompts) >= 1000 and 150 <= len(evals) <= 250
    answers = []
    for row in prompts + evals:
        assert list(row) == ["prompt", "ground_truth"]
        system, user = row["prompt"]
        assert system == {"role": "system", "content": gen.SYSTEM_PROMPT} and "\\boxed{}" in system["content"]
        assert user["role"] == "user" and user["content"].endswith("?")
        assert row["ground_truth"] == str(computed_answer(user["content"]))
        answers.append(int(row["ground_truth"]))
    assert min(answers) == 0 and max(answers) == gen.MAX_ANSWER
    assert {op for op, _ in gen.TEMPLATES} == {"+", "-", "x"}


def test_preference_rows_pair_a_right_answer_with_a_wrong_one():
    rows = read_rows(arithmetic.PREFERENCE_FILE)
    assert len(rows) >= 500
    for row in rows:
        assert list(row) == ["prompt", "chosen", "rejected"]
        truth = str(computed_answer(row["prompt"][1]["content"]))
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        assert boxed_answer([chosen, rejected], [truth, truth]) == [1.0, 0.0]
        assert int(last_boxed(rejected)) >= 0


def test_questions_never_repeat_across_files():
    questions = [row["prompt"][1]["content"] for path in SHIPPED_FILES.values() for row in read_rows(path)]
    assert len(set(questions)) == len(questions)


def test_the_data_stages_read_every_shipped_row(tmp_path):
    from components.common.data.loading import DataSettings
    from components.common.data.preparation import prepare_preferences, prepare_prompts

    settings = DataSettings(prompt_sequence_length=arithmetic.load_params()["prompt_sequence_length"])
    preferences = prepare_preferences(str(arithmetic.PREFERENCE_FILE), None, settings)
    assert len(preferences.train) + len(preferences.eval) == len(read_rows(arithmetic.PREFERENCE_FILE))
    prompts = prepare_prompts(str(arithmetic.PROMPT_FILE), str(arithmetic.EVAL_FILE), settings)
    assert len(prompts.train) == len(read_rows(arithmetic.PROMPT_FILE))
    assert len(prompts.eval) == len(read_rows(arithmetic.EVAL_FILE))
    row = prompts.train[0].to_json()
    assert row["columns"]["ground_truth"] == read_rows(arithmetic.PROMPT_FILE)[0]["ground_truth"]
    assert [m["role"] for m in row["prompt_messages"]] == ["system", "user"]


# --- parameters ------------------------------------------------------------------------------


def test_params_are_pipeline_parameters_of_the_right_type():
    params = arithmetic.load_params()
    assert params["large_model_reference"] == arithmetic.BUILTIN_MODEL_REFERENCE
    assert params["reward_function"] == arithmetic.REWARD_FUNCTION == "boxed-answer"
    assert params["algorithm"] == "grpo" and params["batch_size"] % params["num_generations"] == 0
    for name, value in params.items():
        assert name in PARAMETERS_BY_NAME, f"params.yaml: unknown pipeline parameter {name!r}"
        annotation = PARAMETERS_BY_NAME[name].annotation
        expected = str if annotation not in (int, float, bool) else annotation
        assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), name
    assert params["preference_dataset"] == ""  # the rule is the whole reward: no reward model
    for dataset in ("prompt_dataset", "eval_dataset"):
        assert dataset not in params  # filled in by the runner


# --- tiny chat model -------------------------------------------------------------------------


def test_resolver_knows_both_builtin_models():
    assert resolve_model_reference("builtin:tiny-arithmetic").kind == "builtin"
    assert resolve_model_reference("builtin:tiny-summarizer").kind == "builtin"


def test_tokenizer_round_trips_every_prompt_and_reply_through_the_chat_template():
    from embedded_default.arithmetic.tiny_model import build_tokenizer, task_texts

    tokenizer = build_tokenizer(task_texts())
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    rows = read_rows(arithmetic.PREFERENCE_FILE)[:50] + read_rows(arithmetic.EVAL_FILE)
    for row in rows:
        text = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        assert text.endswith("<|assistant|>\n")
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == text
    reply = "The answer is \\boxed{17}."
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == reply


@pytest.fixture(scope="module")
def built_model(tmp_path_factory):
    from components.common.models import materialize_base_model

    directory = tmp_path_factory.mktemp("tiny-arithmetic")
    resolved = materialize_base_model("builtin:tiny-arithmetic", directory, seed=0)
    assert resolved.kind == "builtin"
    return directory


def test_builtin_model_builds_with_a_chat_template_and_pad_other_than_eos(built_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embedded_default.tiny_model import BUILD_REPORT_FILE

    tokenizer = AutoTokenizer.from_pretrained(built_model)
    model = AutoModelForCausalLM.from_pretrained(built_model)
    assert tokenizer.chat_template and tokenizer.pad_token_id != tokenizer.eos_token_id
    for settings in (model.config, model.generation_config):
        assert settings.pad_token_id == tokenizer.pad_token_id
        assert settings.eos_token_id == tokenizer.eos_token_id
    assert len(tokenizer) == model.config.vocab_size
    report = json.loads((built_model / BUILD_REPORT_FILE).read_text())
    assert report["parameters"] == sum(p.numel() for p in model.parameters())


def test_warmup_teaches_every_right_answer_and_the_mistake_of_every_second_problem():
    from embedded_default.arithmetic.tiny_model import warmup_pairs

    rows = read_rows(arithmetic.PREFERENCE_FILE)[:5]
    replies = [reply for _, reply in warmup_pairs(rows, mistake_every=2)]
    chosen = [row["chosen"][-1]["content"] for row in rows]
    rejected = [row["rejected"][-1]["content"] for row in rows]
    assert replies == [chosen[0], rejected[0], chosen[1], chosen[2], rejected[2], chosen[3], chosen[4], rejected[4]]
    assert [reply for _, reply in warmup_pairs(rows, mistake_every=0)] == chosen


def test_warmed_up_model_answers_in_boxed_but_leaves_room_to_improve(built_model):
    from embedded_default.arithmetic.check import measure

    rows = read_rows(arithmetic.EVAL_FILE)
    greedy = measure(built_model, rows, greedy=True)
    sampled = measure(built_model, rows, greedy=False)
    assert greedy.boxed >= 0.95 and sampled.boxed >= 0.9
    assert 0.05 <= greedy.accuracy <= 0.6
    assert 0.02 <= sampled.accuracy <= 0.6
    # the mistakes taught with the right answers take their share of the samples: room for GRPO
    assert sampled.accuracy <= greedy.accuracy - 0.1
