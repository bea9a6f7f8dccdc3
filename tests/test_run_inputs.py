"""`rlhf-pipeline run` before and around its stages: checks, run directories, what is never cached."""

import json
import threading

import pytest

from components.common.errors import UserInputError
from conftest import REPO_ROOT
from cli.local_run import cache_origin, new_run_dir
from cli.preflight import check_before_run, check_model_reference
from cli.submission.parameter_file import load_parameter_values
from tiny_models import build_causal_lm

GOOD_PAIR = {"input_text": "a post [summary]: ", "candidate_0": "good", "candidate_1": "bad", "choice": 0}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_causal_lm(tmp_path_factory.mktemp("model") / "model")


def values_for(tmp_path, model_dir, pairs=80, prompts=40, **extra):
    return {
        "preference_dataset": write_jsonl(tmp_path / "prefs.jsonl", [
            {**GOOD_PAIR, "input_text": f"post {i} [summary]: "} for i in range(pairs)]),
        "prompt_dataset": write_jsonl(tmp_path / "prompts.jsonl", [
            {"input_text": f"prompt {i} [summary]: "} for i in range(prompts)]),
        "large_model_reference": str(model_dir), **extra,
    }


@pytest.mark.parametrize("text, suffix, what", [("", ".yaml", "empty"), ("# only a comment\n", ".yaml", "empty"),
                                                ("{}", ".json", "an empty mapping")])
def test_an_empty_params_file_is_an_error_not_the_sample_task(tmp_path, text, suffix, what):
    path = tmp_path / f"params{suffix}"
    path.write_text(text)
    with pytest.raises(UserInputError, match=f"params{suffix}: holds no parameters \\({what}\\).*leave out --params"):
        load_parameter_values(path, [])


def test_the_checks_report_each_dataset_and_the_model(tmp_path, model_dir):
    result = check_before_run(values_for(tmp_path, model_dir, batch_size=8))
    assert result.checked == [
        "checked preference_dataset: 72 train + 8 eval pairs (80 rows read)",
        "checked prompt_dataset: 36 train + 4 eval prompts (40 rows read)",
        f"checked large_model_reference: local directory {model_dir}",
    ]
    assert result.warnings == []


def test_a_dataset_smaller_than_one_batch_is_a_warning_with_the_numbers(tmp_path, model_dir):
    result = check_before_run(values_for(tmp_path, model_dir, pairs=20, prompts=10))
    assert result.warnings == [
        "warning: preference_dataset: 18 training pairs, fewer than one batch (batch_size=64): every training "
        "step sees the same 18 pairs",
        "warning: prompt_dataset: 9 training prompts, fewer than one batch (batch_size=64): every PPO batch repeats "
        "prompts",
    ]


def test_broken_data_fails_with_the_validate_data_message(tmp_path, model_dir):
    values = values_for(tmp_path, model_dir)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**GOOD_PAIR, "choice": 7}] * 5)
    with pytest.raises(UserInputError) as caught:
        check_before_run({**values, "preference_dataset": bad})
    assert str(caught.value).startswith(f"preference_dataset: {bad}: 5 of 5 rows are bad (100.0%), more than "
                                        "max_bad_row_fraction=0.01: 5 bad_choice. First: ")


def test_the_evaluation_needs_held_out_pairs_and_prompts(tmp_path, model_dir):
    """eval_split_fraction 0 splits nothing off: the held-out data must then come from an eval_dataset of the
    right kind, or the reward model's evaluation and the policies' would find nothing after training."""
    values = values_for(tmp_path, model_dir, eval_split_fraction=0.0)
    eval_prompts = write_jsonl(tmp_path / "eval_prompts.jsonl", [{"input_text": "held out [summary]: "}])
    with pytest.raises(UserInputError) as caught:
        check_before_run({**values, "eval_dataset": eval_prompts})
    assert str(caught.value) == (
        f"preference_dataset: eval_split_fraction is 0 and eval_dataset {eval_prompts} holds prompt rows, not "
        "preference pairs: no preference pairs are held out to evaluate the reward model (and DPO/KTO's implicit "
        "reward); give an eval_dataset of preference pairs, or set eval_split_fraction above 0 (e.g. 0.1)")
    with pytest.raises(UserInputError, match="^preference_dataset: eval_split_fraction is 0 and no eval_dataset "):
        check_before_run(values)
    with pytest.raises(UserInputError) as caught:
        check_before_run({**values, "preference_dataset": "", "reward_function": "boxed-answer"})
    assert str(caught.value) == (
        "prompt_dataset: eval_split_fraction is 0 and no eval_dataset is given: nothing is held out to evaluate "
        "the tuned policy (nor the reward model); give an eval_dataset, or set eval_split_fraction above 0 (e.g. 0.1)")
    eval_pairs = write_jsonl(tmp_path / "eval_pairs.jsonl", [{**GOOD_PAIR, "input_text": "held out [summary]: "}])
    assert check_before_run({**values, "eval_dataset": eval_pairs}).checked[:2] == [
        "checked preference_dataset: 80 train + 1 eval pairs (81 rows read)",
        "checked prompt_dataset: 40 train + 1 eval prompts (41 rows read)",
    ]


def test_data_too_small_to_hold_anything_out_is_refused(tmp_path, model_dir):
    values = values_for(tmp_path, model_dir)
    one_prompt = write_jsonl(tmp_path / "one_prompt.jsonl", [{**GOOD_PAIR, "candidate_0": f"good {i}"}
                                                             for i in range(5)])
    with pytest.raises(UserInputError) as caught:
        check_before_run({**values, "preference_dataset": one_prompt})
    assert str(caught.value) == (
        f"preference_dataset: no preference pairs can be held out to evaluate the reward model: all 5 pairs of "
        f"{one_prompt} share one prompt (pairs are held out by whole prompts, and training keeps at least one); "
        "give an eval_dataset of preference pairs")
    single = write_jsonl(tmp_path / "single.jsonl", [{"input_text": "the only prompt [summary]: "}])
    with pytest.raises(UserInputError) as caught:
        check_before_run({**values, "prompt_dataset": single})
    assert str(caught.value) == (
        f"prompt_dataset: no prompts are held out to evaluate the tuned policy: {single} has 1 usable prompt(s) "
        "and training keeps at least one; give an eval_dataset")


@pytest.mark.parametrize("reference, message", [
    ("builtin:tiny-summarizer", None),
    ("builtin:nothing", "unknown built-in model 'builtin:nothing'"),
    ("text-bison@001", "not supported: PaLM 2 weights are not public"),
    ("/no/such/model", "model directory '/no/such/model' does not exist"),
])
def test_model_references_are_checked_without_loading_anything(reference, message):
    if message is None:
        assert check_model_reference("large_model_reference", reference).startswith("builtin:tiny-summarizer")
    else:
        with pytest.raises(UserInputError, match=f"^large_model_reference: .*{message}"):
            check_model_reference("large_model_reference", reference)


def test_a_model_directory_needs_a_config_and_weights(tmp_path, model_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="has no config.json"):
        check_model_reference("large_model_reference", str(tmp_path / "empty"))
    (tmp_path / "config-only").mkdir()
    (tmp_path / "config-only" / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(UserInputError, match="has a config.json but no weights"):
        check_model_reference("reward_model_reference", str(tmp_path / "config-only"))


def test_a_hub_model_offline_must_be_in_the_local_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserInputError, match="'nosuch/model' is not in the local Hugging Face cache .* HF_HUB_OFFLINE"):
        check_model_reference("large_model_reference", "nosuch/model")
    snapshot = tmp_path / "hub" / "models--org--cached" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--cached" / "refs" / "main").write_text("abc")
    assert check_model_reference("large_model_reference", "org/cached") == "org/cached, in the local Hugging Face cache"


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    made, lock = [], threading.Lock()

    def make():
        run_dir = new_run_dir(tmp_path)
        with lock:
            made.append(run_dir.name)

    threads = [threading.Thread(target=make) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 12 and all((tmp_path / name).is_dir() for name in made)
    by_second = {}
    for name in made:
        by_second.setdefault(name[:19], []).append(name)
    for stamp, names in by_second.items():  # in one second: the plain name, then -2, -3...
        assert sorted(names, key=len)[0] == stamp
        assert {name.removeprefix(stamp) for name in names} == {""} | {f"-{i}" for i in range(2, len(names) + 1)}


def test_a_cache_entry_tells_the_run_that_wrote_it(tmp_path):
    cache = tmp_path / ".kfp_cache"
    cache.mkdir()
    (cache / "2c630d420b9bffff.json").write_text(json.dumps(
        {"model": {"uri": str(tmp_path / "run-20261202-031226-2" / "artifacts" / "p" / "resolve-base-model" / "model")}}))
    assert cache_origin(cache, "2c630d420b9b") == "run-20261202-031226-2"
    assert cache_origin(cache, "000000000000") == ""


def _steps(spec: dict) -> dict:
    """Every step of a compiled pipeline (a dict), in its dsl.If branches too."""
    found, dags = {}, [spec["root"]["dag"]]
    while dags:
        for name, task in dags.pop()["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                dags.append(component["dag"])
            else:
                found[name] = task
    return found


def test_uploads_are_never_cached_and_the_data_stages_take_the_fingerprints():
    from google.protobuf import json_format

    from pipeline.dag import build_pipeline

    steps = _steps(json_format.MessageToDict(build_pipeline().pipeline_spec, preserving_proto_field_name=False))
    never = {name for name, task in steps.items() if not task.get("cachingOptions", {}).get("enableCache")}
    assert never == {"upload-model", "upload-training-logs"}
    for task, parameter in (("prepare-preference-data", "preference_data_fingerprint"),
                            ("prepare-prompt-data", "prompt_data_fingerprint"),
                            ("supervised-fine-tuning", "pipelinechannel--sft_data_fingerprint")):
        argument = steps[task]["inputs"]["parameters"][parameter.removeprefix("pipelinechannel--")]
        assert argument["componentInputParameter"] == parameter


def test_the_committed_pipeline_never_caches_the_uploads():
    import yaml

    steps = _steps(yaml.safe_load((REPO_ROOT / "pipeline.yaml").read_text()))
    assert {name for name, task in steps.items() if not task["cachingOptions"].get("enableCache")} == {
        "upload-model", "upload-training-logs"}


def test_a_dataset_without_a_sample_task_names_what_is_missing_and_the_sample_task_hint(tmp_path, capsys):
    from cli.main import main

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    code = main(["run", "--set", f"preference_dataset={pairs}", "--dry-run", "--output-dir", str(tmp_path / "runs")])
    error = capsys.readouterr().err
    assert code == 2
    assert "also needs prompt_dataset, large_model_reference" in error
    assert "--sample-task summaries" in error and "keeps the task's other settings" in error
    assert not (tmp_path / "runs").exists()
