"""Every pipeline parameter is written once, in pipeline/parameters.py: the DAG hands each one to every
component whose signature names it (pipeline/dag.py Wiring), and each stage's config takes it by name or
by the field's `from_parameter` (components/common/stage_settings.py)."""

import dataclasses

import pytest
import yaml
from kfp import dsl

from conftest import REPO_ROOT
from components.common.stage_settings import from_parameter, parameter_name, settings_from_arguments
from components.evaluate.config import EvaluationConfig
from components.prepare_preference_data.stage import PreferenceDataConfig
from components.prepare_prompt_data.stage import PromptDataConfig
from components.supervised_fine_tuning.config import SupervisedTrainingConfig
from components.train_reward_model.config import RewardTrainingConfig
from components.tune_policy.config import PolicyTuningConfig
from components.tune_preference.config import PreferenceTuningConfig
from pipeline.dag import Wiring, _components
from pipeline.parameters import PARAMETERS_BY_NAME

# The DAG itself reads these (the training steps' machine); no component takes them.
READ_BY_THE_DAG = {"accelerator_type", "accelerator_count", "cpu_limit", "memory_limit"}
# Component arguments that are not pipeline parameters: the DAG passes them (pipeline/dag.py), the step
# counts as the data stages derived them.
RUN_WIDE = {"code_version", "pipeline_root", "pipeline_job_name"}
DERIVED_STEP_COUNTS = {"reward_model_train_steps", "preference_tuning_train_steps", "reinforcement_learning_train_steps"}

STAGE_CONFIGS = {
    "preference": PreferenceDataConfig, "prompts": PromptDataConfig, "sft": SupervisedTrainingConfig,
    "reward": RewardTrainingConfig, "policy": PolicyTuningConfig, "preference_tuning": PreferenceTuningConfig,
    "evaluate": EvaluationConfig,
}


@pytest.fixture(scope="module")
def components():
    return _components("python:3.11")


@pytest.fixture(scope="module")
def compiled_pipeline():
    return yaml.safe_load((REPO_ROOT / "pipeline.yaml").read_text())


def scalar_inputs(component) -> set[str]:
    return {name for name, spec in component.component_spec.inputs.items() if not spec.type.startswith("system.")}


def test_every_parameter_reaches_a_component_or_the_dag(components):
    taken = set().union(*(scalar_inputs(component) for component in components.values()))
    assert set(PARAMETERS_BY_NAME) - taken == READ_BY_THE_DAG


def test_every_scalar_a_component_takes_is_a_parameter_or_run_wide(components):
    for task, component in components.items():
        assert scalar_inputs(component) - set(PARAMETERS_BY_NAME) - RUN_WIDE - DERIVED_STEP_COUNTS == set(), task


@pytest.mark.parametrize("task", sorted(STAGE_CONFIGS))
def test_each_stage_config_field_that_names_a_parameter_is_one_its_component_takes(task, components):
    """A field filled by a parameter its wrapper does not receive would silently keep its default."""
    taken = scalar_inputs(components[task])
    for field in dataclasses.fields(STAGE_CONFIGS[task]):
        if field.metadata or field.name in PARAMETERS_BY_NAME:
            assert parameter_name(field) in taken, (task, field.name)


def test_a_config_takes_parameters_by_name_or_by_the_name_its_field_gives():
    config = settings_from_arguments(PolicyTuningConfig, {
        "reinforcement_learning_train_steps": 7, "ppo_minibatch_size": 2, "ppo_epochs": 3, "kl_coeff": 0.5,
        "sampling_temperature": 0.7, "policy": object(), "unrelated": "ignored"})
    assert (config.steps, config.minibatch_size, config.epochs, config.kl_coeff, config.temperature) == (7, 2, 3, 0.5, 0.7)
    assert config.batch_size == PolicyTuningConfig(steps=1).batch_size  # not among the arguments: its default
    overridden = settings_from_arguments(PromptDataConfig, {"prompt_dataset": "p.jsonl", "eval_dataset": ""},
                                         eval_dataset=None)
    assert overridden.eval_dataset is None


def test_a_field_without_default_stays_required():
    @dataclasses.dataclass
    class Settings:
        steps: int = from_parameter("train_steps")

    with pytest.raises(TypeError):
        settings_from_arguments(Settings, {})
    assert settings_from_arguments(Settings, {"train_steps": 3}).steps == 3


def test_the_wiring_refuses_an_input_that_is_neither_a_parameter_nor_wired():
    def step(not_a_parameter: str, code_version: str):
        pass

    component = dsl.component(step, base_image="python:3.11", install_kfp_package=False)
    with pytest.raises(TypeError, match="not_a_parameter"):
        Wiring({"code_version": "v"})(component, "plan")


def test_the_steps_after_the_data_stages_take_the_derived_step_counts(compiled_pipeline):
    """A training step's count comes from the data stage's output, not the parameter (0: derive)."""
    tasks = {}
    for component in compiled_pipeline["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    tasks.update(compiled_pipeline["root"]["dag"]["tasks"])
    for name in ("train-reward-model", "tune-policy", "tune-preference", "summarize-run"):
        parameters = tasks[name]["inputs"]["parameters"]
        for count in DERIVED_STEP_COUNTS & set(parameters):
            source = parameters[count]
            assert "prepare-" in str(source), (name, count, source)
