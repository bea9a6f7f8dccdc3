"""Parameter files and their checks: every kind of mistake is refused before any request is sent,
with a message naming the parameter; the public course's parameter_values work unchanged."""

import argparse
import json

import pytest
import yaml

from components.common.errors import UserInputError
from fakes.cloud import LOCATION, PROJECT_ID, google_cloud_fakes
from fakes.templates import COURSE_PARAMETER_VALUES, compile_rlhf_template
from cli.commands import submit
from cli.submission.parameter_file import load_parameter_values
from cli.submission.template import read_template_inputs
from cli.submission.validation import validate_for_pipeline, validate_parameter_values


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return compile_rlhf_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    with google_cloud_fakes(tmp_path_factory.mktemp("home")) as started:
        yield started


def _parse(argv):
    parser = argparse.ArgumentParser()
    submit.add_parser(parser.add_subparsers())
    return parser.parse_args(["submit", *argv])


def test_course_parameter_values_load_and_validate_unchanged(tmp_path, template):
    path = tmp_path / "course.json"
    path.write_text(json.dumps(COURSE_PARAMETER_VALUES))
    values = validate_parameter_values(load_parameter_values(path, []), read_template_inputs(template))
    assert values == COURSE_PARAMETER_VALUES
    assert type(values["reward_model_train_steps"]) is int and type(values["kl_coeff"]) is float


def test_set_values_are_read_against_the_parameter_type(tmp_path, template):
    path = tmp_path / "params.yaml"
    path.write_text("large_model_reference: gpt2\npreference_dataset: p.jsonl\nprompt_dataset: q.jsonl\n")
    raw = load_parameter_values(path, ["instruction=123", "kl_coeff=0", "deploy_model=false", "seed=3",
                                       "model_display_name=a=b"])
    values = validate_parameter_values(raw, read_template_inputs(template))
    assert values["instruction"] == "123" and values["model_display_name"] == "a=b"
    assert values["kl_coeff"] == 0.0 and values["deploy_model"] is False and values["seed"] == 3


def test_the_in_memory_pipeline_declares_the_same_inputs_as_the_compiled_template(template):
    from pipeline.dag import build_pipeline
    from cli.submission.template import pipeline_inputs

    assert pipeline_inputs(build_pipeline()) == read_template_inputs(template)
    assert validate_for_pipeline(dict(COURSE_PARAMETER_VALUES)) == COURSE_PARAMETER_VALUES


BASE = dict(COURSE_PARAMETER_VALUES)
INVALID_FILES = {
    "unknown name": ({**BASE, "kl_coef": 0.2}, "unknown parameter 'kl_coef' (did you mean 'kl_coeff'?)"),
    "string for an int": ({**BASE, "reward_model_train_steps": "1410"},
                          "reward_model_train_steps: expected an integer, got the string '1410'"),
    "fraction for an int": ({**BASE, "batch_size": 6.5}, "batch_size: expected an integer, got the number 6.5"),
    "string for a bool": ({**BASE, "deploy_model": "yes"}, "deploy_model: expected true or false"),
    "number for a string": ({**BASE, "instruction": 42}, "instruction: expected a string, got the number 42"),
    "missing required": ({k: v for k, v in BASE.items() if k != "large_model_reference"},
                         "large_model_reference: is required (a string) but not given"),
    "null required": ({**BASE, "prompt_dataset": None}, "prompt_dataset: is required and cannot be null"),
    "empty dataset": ({**BASE, "prompt_dataset": " "}, "prompt_dataset: ' ' is not allowed"),
    "no pairs and no reward function": ({**BASE, "preference_dataset": ""},
                                        "algorithm 'ppo' needs a reward: give preference_dataset"),
    "dpo without pairs": ({**BASE, "algorithm": "dpo", "preference_dataset": "", "reward_function": "boxed-answer"},
                          "algorithm 'dpo' learns from preference pairs: preference_dataset is empty"),
    "unknown dpo loss": ({**BASE, "dpo_loss_type": "sigmoid,dpop"}, "dpo_loss_type: 'sigmoid,dpop' is not allowed"),
    "zero dpo beta": ({**BASE, "algorithm": "dpo", "dpo_beta": 0.0}, "dpo_beta: 0.0 is not allowed"),
    "zero sft epochs": ({**BASE, "sft_train_epochs": 0}, "sft_train_epochs: 0 is not allowed: must be at least 1"),
    "negative steps": ({**BASE, "reinforcement_learning_train_steps": -5},
                       "reinforcement_learning_train_steps: -5 is not allowed: must be at least 0"),
    "negative kl": ({**BASE, "kl_coeff": -0.1}, "kl_coeff: -0.1 is not allowed: must be at least 0"),
    "zero learning rate": ({**BASE, "reinforcement_learning_rate_multiplier": 0},
                           "reinforcement_learning_rate_multiplier: 0.0 is not allowed: must be greater than 0"),
    "fraction of one": ({**BASE, "eval_split_fraction": 1.0}, "eval_split_fraction: 1.0 is not allowed"),
    "nothing held out": ({**BASE, "eval_split_fraction": 0.0, "eval_dataset": ""},
                         "eval_split_fraction is 0 and no eval_dataset is given: nothing is held out to evaluate "
                         "the tuned policy (nor the reward model); give an eval_dataset, or set eval_split_fraction "
                         "above 0"),
    "nothing held out, eval_dataset left out": (
        {**{k: v for k, v in BASE.items() if k != "eval_dataset"}, "eval_split_fraction": 0.0},
        "eval_split_fraction is 0 and no eval_dataset is given"),
    "minibatch over batch": ({**BASE, "ppo_minibatch_size": 128},
                             "ppo_minibatch_size (128) must not exceed batch_size (64)"),
    "batch not shared by the gpus": ({**BASE, "accelerator_count": 3},
                                     "batch_size (64) must be a multiple of accelerator_count x replica_count (3 x 1)"),
    "batch not shared by the machines": ({**BASE, "accelerator_count": 8, "replica_count": 3},
                                         "batch_size (64) must be a multiple of accelerator_count x replica_count "
                                         "(8 x 3)"),
    "no machine": ({**BASE, "replica_count": 0}, "replica_count: 0 is not allowed: must be at least 1"),
    "tpu": ({**BASE, "accelerator_type": "TPU"}, "TPUs are not supported: the trainers are PyTorch programs"),
    "unknown accelerator": ({**BASE, "accelerator_type": "NVIDIA_GTX_1080"},
                            "'NVIDIA_GTX_1080' is not an accelerator"),
    "bad kms key": ({**BASE, "encryption_spec_key_name": "my-key"}, "encryption_spec_key_name: 'my-key'"),
    "bad tensorboard": ({**BASE, "tensorboard_resource_id": "tb-one"}, "tensorboard_resource_id: 'tb-one'"),
    "unknown chat template setting": ({**BASE, "use_chat_template": "yes"},
                                      "use_chat_template: 'yes' is not allowed: must be one of auto, true, false"),
    "unknown algorithm": ({**BASE, "algorithm": "a2c"}, "algorithm: 'a2c' is not allowed: must be one of ppo, grpo, rloo, dpo, kto"),
    "groups that do not fill the batch": ({**BASE, "algorithm": "grpo", "num_generations": 5},
                                          "batch_size (64) must be a multiple of num_generations (5) for grpo"),
    "rloo's sequence loss for grpo": ({**BASE, "algorithm": "grpo", "loss_type": "sequence"},
                                      "loss_type 'sequence' is RLOO's"),
    "negative missing-eos penalty": ({**BASE, "missing_eos_penalty": -1.0},
                                     "missing_eos_penalty: -1.0 is not allowed: must be at least 0"),
}
INVALID_TEXT = {
    "malformed yaml": ("kl_coeff: [0.1\n", "line 2, column 1: not valid YAML"),
    "not a mapping": ("- kl_coeff\n- 0.1\n", "holds list at the top level"),
    "duplicate key": ("kl_coeff: 0.1\nseed: 1\nkl_coeff: 0.2\n", "line 3: parameter 'kl_coeff' is given twice (first on line 1)"),
}


def _assert_refused_before_any_request(fakes, template, params_file, expected, extra=()):
    before = len(fakes.all_requests()) + len(fakes.resource_manager.requests)
    args = _parse(["--target", "vertex", "--template", str(template), "--project", PROJECT_ID,
                   "--location", LOCATION, "--pipeline-root", "gs://rlhf-runs/p", "--api-endpoint",
                   fakes.vertex.url, "--params", str(params_file), *extra])
    with pytest.raises(UserInputError) as refused:
        submit.main(args)
    assert len(fakes.all_requests()) + len(fakes.resource_manager.requests) == before
    assert expected in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("case", sorted(INVALID_FILES))
def test_invalid_parameter_file_is_refused(tmp_path, fakes, template, case):
    values, expected = INVALID_FILES[case]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    _assert_refused_before_any_request(fakes, template, path, expected)


@pytest.mark.parametrize("case", sorted(INVALID_TEXT))
def test_unreadable_parameter_file_is_refused(tmp_path, fakes, template, case):
    text, expected = INVALID_TEXT[case]
    path = tmp_path / "params.yaml"
    path.write_text(text)
    _assert_refused_before_any_request(fakes, template, path, expected)


def test_bad_set_and_bad_job_settings_are_refused(tmp_path, fakes, template):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(BASE))
    _assert_refused_before_any_request(fakes, template, path, "--set 'kl_coeff': expected NAME=VALUE",
                                       ["--set", "kl_coeff"])
    _assert_refused_before_any_request(fakes, template, path, "--labels Team=x: keys start with a lowercase",
                                       ["--labels", "Team=x"])
    _assert_refused_before_any_request(fakes, template, path, "--network 'vpc': expected projects/",
                                       ["--network", "vpc"])


def test_a_template_built_on_a_local_image_is_refused(tmp_path, fakes):
    template = compile_rlhf_template(tmp_path, image="rlhf-pipeline:0.1.0")
    path = tmp_path / "params.json"
    path.write_text(json.dumps(BASE))
    _assert_refused_before_any_request(fakes, template, path, "runs its steps in rlhf-pipeline:0.1.0, an "
                                       "image that exists only where it was built")


def test_an_eval_split_fraction_of_0_takes_an_eval_dataset():
    """With an eval_dataset, eval_split_fraction 0 is fine as a parameter; the data check says whether it
    holds the reward model's eval pairs."""
    assert validate_for_pipeline({**BASE, "eval_split_fraction": 0.0})["eval_split_fraction"] == 0.0


def test_an_eval_dataset_of_prompts_with_eval_split_fraction_0_is_refused_before_submission(tmp_path, fakes,
                                                                                            monkeypatch):
    """The reward model's eval pairs are then split off preference_dataset, and a fraction of 0 splits off none."""
    from cli.submission.datasets import check_datasets

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fakes.gcs.url)
    fakes.gcs.add_object("held", "val/prompts.jsonl", b'{"input_text": "a post [summary]: "}\n')
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"input_text": f"post {i} [summary]: ", "candidate_0": "good",
                                         "candidate_1": "bad", "choice": 0}) + "\n" for i in range(4)))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"input_text": "a post [summary]: "}\n')
    for eval_dataset in (str(prompts), "gs://held/val/prompts.jsonl"):
        values = {"preference_dataset": str(pairs), "eval_dataset": eval_dataset, "eval_split_fraction": 0.0}
        with pytest.raises(UserInputError) as refused:
            check_datasets(values, report=lambda line: None)
        assert str(refused.value) == (
            f"eval_dataset: eval_split_fraction is 0 and eval_dataset {eval_dataset} holds prompt rows, not "
            "preference pairs: no preference pairs are held out to evaluate the reward model (and DPO/KTO's "
            "implicit reward); give an eval_dataset of preference pairs, or set eval_split_fraction above 0 (e.g. 0.1)")
        check_datasets({**values, "eval_split_fraction": 0.1}, report=lambda line: None)
        check_datasets({**values, "preference_dataset": ""}, report=lambda line: None)  # a rule reward alone
    check_datasets({"preference_dataset": str(pairs), "eval_dataset": str(pairs), "eval_split_fraction": 0.0},
                   report=lambda line: None)


def test_datasets_are_checked_before_submission(tmp_path, fakes, monkeypatch):
    """A missing gs:// object and a broken local file both stop the submission before the job is created."""
    from cli.submission.datasets import check_datasets

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fakes.gcs.url)
    fakes.gcs.add_object("data", "prefs/part-0.jsonl", b'{"input_text": "x", "candidate_0": "a", '
                         b'"candidate_1": "b", "choice": 0}\n{not json\n')
    with pytest.raises(UserInputError, match=r"preference_dataset: gs://data/prefs/part-0.jsonl, line 2"):
        check_datasets({"preference_dataset": "/gcs/data/prefs/*.jsonl"})
    with pytest.raises(UserInputError, match=r"prompt_dataset: gs://data/prompts.jsonl: no object matches"):
        check_datasets({"prompt_dataset": "gs://data/prompts.jsonl"})
    assert fakes.vertex.requests == []
    local = tmp_path / "prompts.jsonl"
    local.write_text('{"input_text": "a"}\n' + "not json\n" * 5)
    with pytest.raises(UserInputError, match=r"prompt_dataset: .*prompts.jsonl: 5 of 6 rows are bad"):
        check_datasets({"prompt_dataset": str(local)})


REWARD_SOURCE = "def score(completions, **kwargs):\n    return [1.0 for _ in completions]\n"
NOT_A_REWARD_SOURCE = "def score(completions):\n    return [1.0 for _ in completions]\n"
LOCAL_PATH_NOTE = "(a local path: the job loads it inside its container, so the image must hold it)"


def _check_reward_function(spec: str) -> list[str]:
    from cli.submission.datasets import check_reward_function

    lines = []
    check_reward_function({"reward_function": spec}, report=lines.append)
    return lines


def test_a_local_reward_function_is_loaded_before_submission_and_a_missing_one_refused(tmp_path):
    """A local file is loaded as the RL step loads it; one that is not here must be under /gcs/ or in the image."""
    path = tmp_path / "submit_local_rewards.py"
    path.write_text(REWARD_SOURCE)
    assert _check_reward_function("") == []
    assert _check_reward_function("gsm8k-answer") == ["checked reward_function: gsm8k-answer, built in"]
    assert _check_reward_function(f"{path}:score") == [
        f"checked reward_function: {path}:score, loaded {LOCAL_PATH_NOTE}"]
    with pytest.raises(UserInputError) as refused:
        _check_reward_function(f"{path}:scor")
    assert str(refused.value) == (f"reward_function '{path}:scor': rlhf_reward_function_submit_local_rewards has "
                                  "no 'scor'; it defines score")
    missing = tmp_path / "missing.py"
    with pytest.raises(UserInputError) as refused:
        _check_reward_function(f"{missing}:score")
    assert str(refused.value) == (f"reward_function: {missing} does not exist here; put the file under "
                                  "/gcs/BUCKET/... (gs://BUCKET/...) or in the container image (pass "
                                  "--skip-data-check if it is only there)")
    with pytest.raises(UserInputError, match=r"^reward_function: gs://rewards/r.py does not exist here; put the file "
                                             r"under /gcs/BUCKET/"):  # the job reads /gcs/ paths, not gs:// URIs
        _check_reward_function("gs://rewards/r.py:score")


def test_a_reward_function_under_gcs_is_downloaded_and_loaded_before_submission(fakes, monkeypatch):
    """/gcs/BUCKET/PATH is gs://BUCKET/PATH on the job's machine: the object must exist and hold the function."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fakes.gcs.url)
    fakes.gcs.add_object("rewards", "fn/submit_gcs_rewards.py", REWARD_SOURCE.encode())
    fakes.gcs.add_object("rewards", "fn/submit_no_kwargs.py", NOT_A_REWARD_SOURCE.encode())
    assert _check_reward_function("/gcs/rewards/fn/submit_gcs_rewards.py:score") == [
        ("checked reward_function: /gcs/rewards/fn/submit_gcs_rewards.py:score, read from "
         "gs://rewards/fn/submit_gcs_rewards.py and loaded")]
    with pytest.raises(UserInputError, match=r"^reward_function '/gcs/rewards/fn/submit_gcs_rewards.py:scor': "
                                             r"rlhf_reward_function_submit_gcs_rewards has no 'scor'"):
        _check_reward_function("/gcs/rewards/fn/submit_gcs_rewards.py:scor")
    with pytest.raises(UserInputError, match=r"^reward_function '/gcs/rewards/fn/submit_no_kwargs.py:score' cannot "
                                             r"be called as a reward function"):
        _check_reward_function("/gcs/rewards/fn/submit_no_kwargs.py:score")
    with pytest.raises(UserInputError) as refused:
        _check_reward_function("/gcs/rewards/fn/missing.py:score")
    assert str(refused.value) == "reward_function: gs://rewards/fn/missing.py does not exist; upload the file there"
    assert fakes.vertex.requests == []


def test_a_reward_function_module_must_import_before_submission():
    """A module that does not import here is refused, with the way out when it is only in the image."""
    assert _check_reward_function("components.common.reward_functions:boxed_answer") == [
        ("checked reward_function: components.common.reward_functions:boxed_answer, imported here (the container "
         "image must hold the module too)")]
    with pytest.raises(UserInputError) as refused:
        _check_reward_function("no_such_rewards.module:score")
    assert str(refused.value) == (
        "reward_function 'no_such_rewards.module:score': the module no_such_rewards.module could not be imported: "
        "ModuleNotFoundError: No module named 'no_such_rewards' (a file is given as path/to/file.py:name); the "
        "module must be installed in the container image (pass --skip-data-check if it is only there)")
    with pytest.raises(UserInputError, match=r"has no 'nothing'") as refused:
        _check_reward_function("components.common.reward_functions:nothing")
    assert "--skip-data-check" not in str(refused.value)  # it imports: the name is wrong, wherever it runs
