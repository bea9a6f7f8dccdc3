"""The two data-preparation components, called as the pipeline calls them."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from kfp.dsl import Model, Output

from components.common.models import write_model_reference
from components.prepare_preference_data.component import prepare_preference_data
from components.prepare_prompt_data.component import prepare_prompt_data
from stage_calls import call_stage, table_defaults

SAMPLES = Path(__file__).parent / "data_samples"
TOKENIZER = SAMPLES / "tokenizer"
INSTRUCTION = "Summarize in less than 50 words"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def base_model(tmp_path) -> SimpleNamespace:
    directory = tmp_path / "base_model"
    write_model_reference(directory, str(TOKENIZER), "test tokenizer")
    return SimpleNamespace(path=str(directory))


def run_preference(tmp_path, base_model, dataset, eval_dataset="", seed=0, name="pref", **overrides):
    data, report = tmp_path / name / "data", tmp_path / name / "report.md"
    arguments = dict(
        preference_dataset=str(dataset), eval_dataset=str(eval_dataset), instruction=INSTRUCTION,
        prompt_sequence_length=512, target_sequence_length=64, batch_size=4, reward_model_train_epochs=3,
        reward_model_train_steps=0, algorithm="ppo", reinforcement_learning_train_epochs=2,
        reinforcement_learning_train_steps=0, eval_split_fraction=0.25, seed=seed, code_version="test",
        base_model=base_model, preference_data=SimpleNamespace(path=str(data)),
        data_report=SimpleNamespace(path=str(report)),
    )
    arguments.update(overrides)
    outputs = call_stage(prepare_preference_data, **arguments)
    return outputs, data, report


def run_prompts(tmp_path, base_model, dataset, eval_dataset="", name="prompts", **overrides):
    data, report = tmp_path / name / "data", tmp_path / name / "report.md"
    arguments = dict(
        prompt_dataset=str(dataset), eval_dataset=str(eval_dataset), instruction=INSTRUCTION,
        prompt_sequence_length=512, batch_size=4, reinforcement_learning_train_epochs=2,
        reinforcement_learning_train_steps=0, eval_split_fraction=0.2, max_eval_prompts=3, seed=0,
        code_version="test", base_model=base_model, prompt_data=SimpleNamespace(path=str(data)),
        data_report=SimpleNamespace(path=str(report)),
    )
    arguments.update(overrides)
    outputs = call_stage(prepare_prompt_data, **arguments)
    return outputs, data, report


def test_vertex_text_preferences_become_canonical_pairs_with_the_instruction(tmp_path, base_model):
    outputs, data, report = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl")
    train, held_out = read_jsonl(data / "train.jsonl"), read_jsonl(data / "eval.jsonl")
    assert (outputs.train_rows, outputs.eval_rows) == (len(train), len(held_out))
    assert len(train) + len(held_out) == 24 and len(held_out) == 6
    assert outputs.reward_model_train_steps == math.ceil(len(train) / 4) * 3
    source = read_jsonl(SAMPLES / "vertex_text_preferences.jsonl")
    by_prompt = {f"{INSTRUCTION}\n\n{row['input_text']}": row for row in source}
    for pair in train + held_out:
        assert set(pair) == {"prompt", "chosen", "rejected"}
        row = by_prompt[pair["prompt"]]
        assert pair["chosen"] == row[f"candidate_{row['choice']}"]
        assert pair["rejected"] == row[f"candidate_{1 - row['choice']}"]
    accounting = json.loads((data / "accounting.json").read_text())
    assert accounting["datasets"][0]["balanced"] and accounting["datasets"][0]["input_rows"] == 24
    text = report.read_text()
    assert "vertex-text" in text and "choice=0: 12 (50%)" in text and "| prompt | 24 of 24 |" in text


def test_both_data_stages_put_the_system_prompt_before_every_prompt_without_one(tmp_path, base_model):
    system = "You are a careful assistant."
    _, pairs, pair_report = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl",
                                           system_prompt=system)
    _, prompts, prompt_report = run_prompts(tmp_path, base_model, SAMPLES / "vertex_chat_prompts.jsonl",
                                            system_prompt=system)
    contexts = {row.get("context") for row in read_jsonl(SAMPLES / "vertex_chat_prompts.jsonl")} - {None}
    rows = read_jsonl(pairs / "train.jsonl") + read_jsonl(prompts / "train.jsonl") + read_jsonl(prompts / "eval.jsonl")
    kept = 0
    for row in rows:
        first, last = row["prompt_messages"][0], row["prompt_messages"][-1]
        first_user = next(m for m in row["prompt_messages"] if m["role"] == "user")
        assert first["role"] == "system" and first["content"] in contexts | {system}
        if first["content"] == system:
            assert row["prompt"].startswith(f"{system}\n\n{INSTRUCTION}\n\n")
        else:  # a row's own system message (Vertex's context) wins
            kept += 1
            assert system not in row["prompt"]
        assert last["role"] == "user" and first_user["content"].startswith(INSTRUCTION)
    assert 0 < kept < len(rows)
    for report in (pair_report, prompt_report):
        assert f"System prompt: '{system}' (system_prompt) is the system message of" in report.read_text()


def test_without_a_system_prompt_the_prepared_rows_are_unchanged(tmp_path, base_model):
    _, before, _ = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl", name="a")
    _, after, _ = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl", name="b",
                                 system_prompt="")
    assert (before / "train.jsonl").read_text() == (after / "train.jsonl").read_text()
    assert "prompt_messages" not in read_jsonl(after / "train.jsonl")[0]


def test_dpo_steps_derive_from_the_pairs_and_the_policy_epochs(tmp_path, base_model):
    dataset = SAMPLES / "vertex_text_preferences.jsonl"
    outputs, data, report = run_preference(tmp_path, base_model, dataset, algorithm="dpo")
    train = read_jsonl(data / "train.jsonl")
    assert outputs.preference_tuning_train_steps == math.ceil(len(train) / 4) * 2  # 2 policy epochs
    assert outputs.reward_model_train_steps == math.ceil(len(train) / 4) * 3  # the reward model's own epochs
    assert f"dpo steps (reinforcement_learning_train_steps): {outputs.preference_tuning_train_steps}" in report.read_text()
    given, _, report = run_preference(tmp_path, base_model, dataset, algorithm="kto", name="given",
                                      reinforcement_learning_train_steps=5)
    assert given.preference_tuning_train_steps == 5 and "kto steps" in report.read_text()
    _, _, ppo_report = run_preference(tmp_path, base_model, dataset, name="ppo")
    assert "dpo steps" not in ppo_report.read_text()  # not a step count this run uses


def test_no_preference_dataset_prepares_nothing_and_says_so(tmp_path, base_model):
    outputs, data, report = run_preference(tmp_path, base_model, "")
    assert tuple(outputs) == (0, 0, 0, 0)
    assert (data / "train.jsonl").read_text() == (data / "eval.jsonl").read_text() == ""
    assert "No preference_dataset was given" in report.read_text()


def test_the_split_is_deterministic_in_the_seed_and_keeps_prompts_on_one_side(tmp_path, base_model):
    dataset = SAMPLES / "vertex_text_preferences.jsonl"
    _, first, _ = run_preference(tmp_path, base_model, dataset, seed=3, name="a")
    _, again, _ = run_preference(tmp_path, base_model, dataset, seed=3, name="b")
    _, other, _ = run_preference(tmp_path, base_model, dataset, seed=4, name="c")
    assert (first / "eval.jsonl").read_text() == (again / "eval.jsonl").read_text()
    assert (first / "eval.jsonl").read_text() != (other / "eval.jsonl").read_text()
    train_prompts = {p["prompt"] for p in read_jsonl(first / "train.jsonl")}
    assert not train_prompts & {p["prompt"] for p in read_jsonl(first / "eval.jsonl")}


def test_explicit_pairs_and_given_steps(tmp_path, base_model):
    outputs, data, _ = run_preference(tmp_path, base_model, SAMPLES / "explicit_preferences.jsonl",
                                      reward_model_train_steps=7, instruction="")
    pairs = read_jsonl(data / "train.jsonl") + read_jsonl(data / "eval.jsonl")
    assert outputs.reward_model_train_steps == 7
    assert len(pairs) == 12 and all(p["prompt"].startswith("Question ") for p in pairs)
    assert all(p["rejected"] == " No idea." for p in pairs)


def test_preference_eval_dataset_supplies_eval_pairs_and_eval_prompts(tmp_path, base_model):
    outputs, data, report = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl",
                                           eval_dataset=SAMPLES / "explicit_preferences.jsonl")
    assert (outputs.train_rows, outputs.eval_rows) == (24, 12)
    assert all(p["prompt"].startswith(f"{INSTRUCTION}\n\nQuestion") for p in read_jsonl(data / "eval.jsonl"))
    outputs, data, _ = run_prompts(tmp_path, base_model, SAMPLES / "vertex_text_prompts.jsonl",
                                   eval_dataset=SAMPLES / "explicit_preferences.jsonl")
    held_out = read_jsonl(data / "eval.jsonl")
    assert (outputs.train_rows, outputs.eval_rows) == (20, 3)
    assert all(set(p) == {"prompt"} and "Question" in p["prompt"] for p in held_out)
    assert outputs.reinforcement_learning_train_steps == math.ceil(20 / 4) * 2
    books = json.loads((data / "accounting.json").read_text())["datasets"][1]
    assert (books["used"], books["set_aside"], books["balanced"]) == (3, 9, True)


def test_a_prompt_eval_dataset_is_not_used_for_pairs(tmp_path, base_model):
    outputs, _, report = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl",
                                        eval_dataset=SAMPLES / "explicit_prompts.jsonl")
    assert (outputs.train_rows, outputs.eval_rows) == (18, 6)
    assert "holds prompt rows" in report.read_text()


def test_prompts_split_when_no_eval_dataset_and_eval_is_capped(tmp_path, base_model):
    outputs, data, _ = run_prompts(tmp_path, base_model, SAMPLES / "explicit_prompts.jsonl", max_eval_prompts=1)
    train, held_out = read_jsonl(data / "train.jsonl"), read_jsonl(data / "eval.jsonl")
    assert (len(train), len(held_out)) == (11, 1) == (outputs.train_rows, outputs.eval_rows)
    assert all(p["prompt"].startswith(f"{INSTRUCTION}\n\nQuestion") for p in train + held_out)


@pytest.mark.parametrize("algorithm, expected_steps", [("ppo", 6), ("grpo", 12), ("rloo", 12)])
def test_rl_steps_are_derived_from_the_prompts_each_step_takes(tmp_path, base_model, algorithm, expected_steps):
    """PPO takes batch_size prompts a step; GRPO/RLOO batch_size / num_generations (batch_size counts responses)."""
    outputs, _, report = run_prompts(tmp_path, base_model, SAMPLES / "explicit_prompts.jsonl", max_eval_prompts=1,
                                     batch_size=4, algorithm=algorithm, num_generations=2)
    assert outputs.train_rows == 11  # ceil(11 / 4) * 2 epochs = 6 for PPO; ceil(11 / 2) * 2 = 12 for groups of 2
    assert outputs.reinforcement_learning_train_steps == expected_steps
    prompts_per_step = 4 if algorithm == "ppo" else 2
    assert f"ceil(11 / {prompts_per_step}) x 2 epochs" in report.read_text()


def test_long_texts_are_truncated_or_dropped_and_counted(tmp_path, base_model):
    outputs, data, report = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl",
                                           target_sequence_length=8, prompt_sequence_length=20)
    pairs = read_jsonl(data / "train.jsonl") + read_jsonl(data / "eval.jsonl")
    assert pairs and all(p["prompt"].endswith("[summary]: ") for p in pairs)  # prompts keep their end
    books = json.loads((data / "accounting.json").read_text())["datasets"][0]
    assert books["truncated"]["prompt"] == 24 and books["balanced"]
    outputs, data, _ = run_preference(tmp_path, base_model, SAMPLES / "vertex_text_preferences.jsonl",
                                      target_sequence_length=40, length_policy="drop", name="drop")
    books = json.loads((data / "accounting.json").read_text())["datasets"][0]
    dropped = books["rejected_by_reason"].get("answer_too_long", 0)
    assert 0 < dropped < 24 and outputs.train_rows + outputs.eval_rows == 24 - dropped and books["balanced"]
    assert len(read_jsonl(data / "rejects.jsonl")) == dropped


def test_an_unloadable_tokenizer_degrades_to_a_note(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    directory = tmp_path / "hub_model"
    write_model_reference(directory, "no-such-org/no-such-model", "a hub id")
    outputs, _, report = run_preference(tmp_path, SimpleNamespace(path=str(directory)),
                                        SAMPLES / "vertex_text_preferences.jsonl")
    assert outputs.train_rows + outputs.eval_rows == 24
    assert "could not be loaded" in report.read_text()


def test_the_wrappers_compile_as_kfp_components_whose_parameters_have_no_second_default():
    """The parameter table's defaults reach the steps through the DAG; a wrapper default could disagree."""
    from kfp import dsl

    for function in (prepare_preference_data, prepare_prompt_data):
        component = dsl.component(function, base_image="python:3.11", install_kfp_package=False)
        inputs = component.component_spec.inputs
        assert "max_bad_row_fraction" in inputs and "length_policy" in inputs
        assert [name for name, spec in inputs.items() if spec.default is not None] == []


def reference_test_tokenizer(tokenizer: str, model: Output[Model]):
    """Stands in for the base-model stage: a Model artifact that references the test tokenizer."""
    from components.common.models import write_model_reference

    write_model_reference(model.path, tokenizer, "test tokenizer")


def test_both_stages_run_in_a_local_kfp_pipeline(tmp_path, monkeypatch):
    """The real KFP executor: other layouts than Vertex's (a ranking in Parquet, chat prompts)."""
    import pyarrow
    import pyarrow.parquet
    from kfp import dsl, local

    rows = read_jsonl(SAMPLES / "ranking_preferences.jsonl")
    rankings = tmp_path / "rankings.parquet"
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows * 4), rankings)
    build = lambda function: dsl.component(function, base_image="python:3.11", install_kfp_package=False)  # noqa
    model_task, preference_task, prompt_task = map(build, (reference_test_tokenizer, prepare_preference_data,
                                                           prepare_prompt_data))

    @dsl.pipeline
    def data_only(preference_dataset: str, prompt_dataset: str) -> int:
        model = model_task(tokenizer=str(TOKENIZER)).outputs["model"]
        given = dict(preference_dataset=preference_dataset, eval_dataset="", instruction=INSTRUCTION, batch_size=2,
                     eval_split_fraction=0.0, code_version="test", base_model=model)
        preference = preference_task(**given, **table_defaults(prepare_preference_data, given))
        given = dict(prompt_dataset=prompt_dataset, eval_dataset="", instruction="", batch_size=2,
                     eval_split_fraction=0.25, code_version="test", base_model=model)
        prompt_task(**given, **table_defaults(prepare_prompt_data, given))
        return preference.outputs["reward_model_train_steps"]

    monkeypatch.chdir(tmp_path)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    run = data_only(preference_dataset=str(rankings), prompt_dataset=str(SAMPLES / "vertex_chat_prompts.jsonl"))
    assert run.output == 4  # 8 pairs (4 copies of the rows are 3 duplicates each) at batch size 2
    outputs = next((tmp_path / "root").iterdir())
    books = json.loads((outputs / "prepare-preference-data" / "preference_data" / "accounting.json").read_text())
    assert books["datasets"][0]["duplicates"] == 24 and books["datasets"][0]["balanced"]
    prompts = read_jsonl(outputs / "prepare-prompt-data" / "prompt_data" / "train.jsonl")
    assert len(prompts) == 3 and all(p["prompt"].endswith("\n\nAssistant:") for p in prompts)
