"""The bundled sample task: its data generator, gold score, parameters and tiny model."""

import json

import pytest

import embedded_default
from components.common.prompts import apply_instruction
from embedded_default import generate as gen
from components.common.registry import gold_scorers
from embedded_default.gold import DEFAULT_WORD_LIMIT, gold_score, word_limit
from embedded_default.lexicon import KEY_NOUNS, check_lexicon, key_nouns_in
from pipeline.parameters import PARAMETERS_BY_NAME

SHIPPED_FILES = {
    gen.PREFERENCE_FILE_NAME: embedded_default.PREFERENCE_FILE,
    gen.PROMPT_FILE_NAME: embedded_default.PROMPT_FILE,
    gen.EVAL_FILE_NAME: embedded_default.EVAL_FILE,
}
SMALL = gen.GeneratorConfig(seed=3, preference_rows=60, prompt_rows=40, eval_rows=10)
POST = (
    "SUBREDDIT: r/pets\nTITLE: My cat keeps waking me up at night\nPOST: I have had my cat for two years. "
    "Lately my cat keeps waking me up at night. What should I do? [summary]: "
)
PROMPT = apply_instruction(POST, "Summarize in less than 12 words")


def read_rows(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# --- generator -------------------------------------------------------------------------------


def test_same_seed_writes_the_same_bytes_and_another_seed_differs(tmp_path):
    first = gen.generate(tmp_path / "a", SMALL)
    second = gen.generate(tmp_path / "b", SMALL)
    other = gen.generate(tmp_path / "c", gen.GeneratorConfig(seed=4, preference_rows=60, prompt_rows=40, eval_rows=10))
    for name in SHIPPED_FILES:
        assert first[name].read_bytes() == second[name].read_bytes()
        assert first[name].read_bytes() != other[name].read_bytes()
    assert len(read_rows(first[gen.PREFERENCE_FILE_NAME])) == 60
    assert len(read_rows(first[gen.PROMPT_FILE_NAME])) == 40
    assert len(read_rows(first[gen.EVAL_FILE_NAME])) == 10


def test_command_line_writes_the_requested_counts(tmp_path):
    gen.main(["--output-dir", str(tmp_path), "--seed", "5", "--preference-rows", "7", "--prompt-rows", "6",
              "--eval-rows", "2"])
    assert [len(read_rows(tmp_path / name)) for name in SHIPPED_FILES] == [7, 6, 2]


def test_shipped_data_equals_a_fresh_generation(tmp_path):
    fresh = gen.generate(tmp_path)
    for name, shipped in SHIPPED_FILES.items():
        assert shipped.read_bytes() == fresh[name].read_bytes(), (
            f"{shipped} is stale: run `python -m embedded_default.generate`"
        )


def test_shipped_data_stays_small():
    assert sum(path.stat().st_size for path in SHIPPED_FILES.values()) < 3_000_000


def test_every_shipped_preference_row_is_valid_and_points_at_the_better_candidate():
    rows = read_rows(embedded_default.PREFERENCE_FILE)
    assert len(rows) >= 3000
    for row in rows:
        assert list(row) == ["input_text", "candidate_0", "candidate_1", "choice"]
        assert row["input_text"].endswith(gen.SUMMARY_CUE)
        assert row["choice"] in (0, 1)
        assert all(isinstance(row[key], str) and row[key].strip() for key in ("candidate_0", "candidate_1"))
        better, worse = row[f"candidate_{row['choice']}"], row[f"candidate_{1 - row['choice']}"]
        assert gold_score(row["input_text"], better) - gold_score(row["input_text"], worse) >= gen.MIN_GOLD_GAP
        assert len(key_nouns_in(row["input_text"].split("\n", 1)[1])) >= 2  # the key noun, named repeatedly
        assert len(set(key_nouns_in(row["input_text"]))) == 1
    share_of_first = sum(row["choice"] == 0 for row in rows) / len(rows)
    assert 0.45 < share_of_first < 0.55


def test_shipped_prompt_files_are_valid_and_eval_prompts_are_held_out():
    prompts = read_rows(embedded_default.PROMPT_FILE)
    evals = read_rows(embedded_default.EVAL_FILE)
    assert len(prompts) >= 2000
    assert 150 <= len(evals) <= 250
    for row in prompts + evals:
        assert list(row) == ["input_text"]
        assert row["input_text"].endswith(gen.SUMMARY_CUE)
    eval_texts = {row["input_text"] for row in evals}
    assert len(eval_texts) == len(evals)
    training_texts = {row["input_text"] for row in prompts} | {
        row["input_text"] for row in read_rows(embedded_default.PREFERENCE_FILE)
    }
    assert not eval_texts & training_texts


def test_preference_rows_cover_every_kind_of_flaw():
    """Wrong key facts, rambling and vague summaries all appear among the rejected candidates."""
    rows = read_rows(embedded_default.PREFERENCE_FILE)
    rejected = [(row["input_text"], row[f"candidate_{1 - row['choice']}"]) for row in rows]
    wrong_fact = sum(
        bool(key_nouns_in(text)) and key_nouns_in(text)[0] not in key_nouns_in(post) for post, text in rejected
    )
    no_fact = sum(not key_nouns_in(text) for _, text in rejected)
    too_long = sum(len(text.split()) >= DEFAULT_WORD_LIMIT for _, text in rejected)
    for count in (wrong_fact, no_fact, too_long):
        assert count / len(rows) > 0.1


def test_lexicon_phrases_never_name_a_key_noun():
    check_lexicon()
    assert len(KEY_NOUNS) >= 40


# --- gold score ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("My cat keeps waking me up at night.", 1.0),  # key fact, 8 words
        ("My cats keep waking me up.", 1.0),  # plural still names the key fact
        ("My dog keeps waking me up at night.", 0.1),  # wrong key fact
        ("Something keeps waking me up at night.", 0.4),  # key fact dropped
        ("My cat and my dog keep waking me up.", 0.5),  # right and wrong
        ("", 0.0),
        ("   ", 0.0),
        ("Cat.", 1 / 3),  # too short to be a summary
    ],
)
def test_gold_score_of_handcrafted_summaries(response, expected):
    assert gold_score(PROMPT, response) == pytest.approx(expected)


def test_gold_score_falls_linearly_past_the_word_limit():
    def summary(word_count):
        return "My cat " + " ".join(f"w{'x' * i}" for i in range(word_count - 2))

    assert gold_score(PROMPT, summary(11)) == 1.0  # less than 12 words
    assert gold_score(PROMPT, summary(12)) == pytest.approx(1 - 1 / 12)
    assert gold_score(PROMPT, summary(17)) == pytest.approx(0.5)
    assert gold_score(PROMPT, summary(23)) == 0.0
    assert gold_score(PROMPT, summary(40)) == 0.0


def test_gold_score_reads_the_word_limit_from_the_instruction():
    assert word_limit(PROMPT) == 12
    assert word_limit(apply_instruction(POST, "Summarize in fewer than 5 words")) == 5
    assert word_limit(POST) == DEFAULT_WORD_LIMIT
    six_words = "My cat keeps waking me up."
    assert gold_score(apply_instruction(POST, "Summarize in less than 5 words"), six_words) < 1.0
    assert gold_score(PROMPT, six_words) == 1.0


def test_gold_score_penalises_repetition_and_stays_in_range():
    assert gold_score(PROMPT, "my cat my cat my cat my cat") < 0.5
    for response in ("My cat", "x " * 100, "cat " * 5, "My cat keeps waking me up, any advice?"):
        assert 0.0 <= gold_score(PROMPT, response) <= 1.0


def test_gold_fact_factor_is_neutral_for_a_prompt_without_a_key_noun():
    assert gold_score("Summarize in less than 12 words\n\nThe weather was nice. [summary]: ", "It was sunny.") == 1.0


def test_gold_scorer_registry():
    """The installed package registers the sample task's scorer, and only through its entry point."""
    assert gold_scorers()["sample-summaries"] is gold_score


# --- parameters ------------------------------------------------------------------------------


def test_params_are_known_pipeline_parameters_of_the_right_type():
    params = embedded_default.load_params()
    for name, value in params.items():
        assert name in PARAMETERS_BY_NAME, f"params.yaml: unknown pipeline parameter {name!r}"
        annotation = PARAMETERS_BY_NAME[name].annotation
        expected = str if annotation not in (int, float, bool) else annotation
        assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), name
    for dataset in ("preference_dataset", "prompt_dataset", "eval_dataset"):
        assert dataset not in params  # filled in by the runner
    assert params["large_model_reference"] == embedded_default.BUILTIN_MODEL_REFERENCE
    assert params["gold_scorer"] in gold_scorers()
    assert word_limit(params["instruction"]) == DEFAULT_WORD_LIMIT  # the limit the data was built for


# --- tiny model ------------------------------------------------------------------------------


def test_warmup_examples_label_only_the_response_and_eos():
    from embedded_default.tiny_model import IGNORE_INDEX, encode_pairs, train_tokenizer, warmup_pairs

    rows = read_rows(embedded_default.PREFERENCE_FILE)[:20]
    pairs = warmup_pairs(rows, "Summarize in less than 12 words")
    assert len(pairs) == 40 and pairs[0][0] == apply_instruction(rows[0]["input_text"], "Summarize in less than 12 words")
    tokenizer = train_tokenizer([text for pair in pairs for text in pair], vocab_size=400)
    for (prompt, response), (ids, labels) in zip(pairs, encode_pairs(tokenizer, pairs)):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids  # exactly what generation is fed
        assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
        assert labels[len(prompt_ids) :] == ids[len(prompt_ids) :]
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids[len(prompt_ids) : -1]) == response


def test_build_tiny_model_saves_a_loadable_model_that_generates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.common.generation import generate_responses
    from embedded_default.tiny_model import BUILD_REPORT_FILE, TinyModelConfig, build_tiny_model

    config = TinyModelConfig(vocab_size=600, hidden_size=32, intermediate_size=64, warmup_steps=4, warmup_batch_size=4)
    directory = build_tiny_model(tmp_path / "tiny", seed=1, progress=False, config=config)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    for settings in (model.config, model.generation_config):
        assert settings.pad_token_id == tokenizer.pad_token_id
        assert settings.eos_token_id == tokenizer.eos_token_id
        assert settings.bos_token_id == tokenizer.bos_token_id
    assert len(tokenizer) == config.vocab_size == model.config.vocab_size
    assert model.config.hidden_size == 32
    report = json.loads((directory / BUILD_REPORT_FILE).read_text())
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["config"]["warmup_steps"] == 4 and report["seed"] == 1

    torch.manual_seed(0)
    batch = generate_responses(model, tokenizer, [PROMPT, PROMPT[:80]], max_new_tokens=6, max_prompt_tokens=128)
    assert len(batch.texts) == 2 and batch.response_ids.shape[1] <= 6

    again = build_tiny_model(tmp_path / "again", seed=1, progress=False, config=config)
    for name in ("model.safetensors", "tokenizer.json"):
        assert (directory / name).read_bytes() == (again / name).read_bytes()
