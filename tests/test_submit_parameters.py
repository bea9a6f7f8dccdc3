"""Parameter files and their checks: every kind of mistake is refused before any request is sent,
with a message naming the parameter; the public course's parameter_values work unchanged."""

import argparse
import json

import pytest
import yaml

from components.common.errors import UserInputError
from fakes.cloud import LOCATION, PROJECT_ID, google_cloud_fakes
from fakes.templates import COURSE_PARAMETER_VALUES, compile_rlhf_template
from pipeline.commands import submit
from pipeline.submission.parameter_file import load_parameter_values
from pipeline.submission.template import read_template_inputs
from pipeline.submission.validation import validate_for_pipeline, validate_parameter_values


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
    from pipeline.submission.template import pipeline_inputs

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
    "minibatch over batch": ({**BASE, "ppo_minibatch_size": 128},
                             "ppo_minibatch_size (128) must not exceed batch_size (64)"),
    "batch not shared by the gpus": ({**BASE, "accelerator_count": 3},
                                     "batch_size (64) must be a multiple of accelerator_count (3)"),
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


def test_datasets_are_checked_before_submission(tmp_path, fakes, monkeypatch):
    """A missing gs:// object and a broken local file both stop the submission before the job is created."""
    from pipeline.submission.datasets import check_datasets

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
