import subprocess
import sys
from typing import Optional

import pytest
import yaml

from conftest import REPO_ROOT
from pipeline.parameters import PARAMETERS, VERTEX_PARAMETERS

KFP_TYPES = {str: "STRING", Optional[str]: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN"}

# Name and type of every parameter of Vertex AI's rlhf_pipeline (google-cloud-pipeline-components 2.22.0).
VERTEX_RLHF_INTERFACE = {
    "prompt_dataset": "STRING", "preference_dataset": "STRING", "large_model_reference": "STRING",
    "model_display_name": "STRING", "prompt_sequence_length": "NUMBER_INTEGER",
    "target_sequence_length": "NUMBER_INTEGER", "reward_model_learning_rate_multiplier": "NUMBER_DOUBLE",
    "reinforcement_learning_rate_multiplier": "NUMBER_DOUBLE", "reward_model_train_steps": "NUMBER_INTEGER",
    "reinforcement_learning_train_steps": "NUMBER_INTEGER", "kl_coeff": "NUMBER_DOUBLE",
    "instruction": "STRING", "deploy_model": "BOOLEAN", "eval_dataset": "STRING", "project": "STRING",
    "location": "STRING", "accelerator_type": "STRING", "encryption_spec_key_name": "STRING",
    "tensorboard_resource_id": "STRING",
}

COURSE_PARAMETER_VALUES = {
    "preference_dataset": "gs://vertex-ai/generative-ai/rlhf/text_small/summarize_from_feedback_tfds/comparisons/train/*.jsonl",
    "prompt_dataset": "gs://vertex-ai/generative-ai/rlhf/text_small/reddit_tfds/train/*.jsonl",
    "eval_dataset": "gs://vertex-ai/generative-ai/rlhf/text_small/reddit_tfds/val/*.jsonl",
    "large_model_reference": "llama-2-7b",
    "reward_model_train_steps": 1410, "reinforcement_learning_train_steps": 320,
    "reward_model_learning_rate_multiplier": 1.0, "reinforcement_learning_rate_multiplier": 1.0,
    "kl_coeff": 0.1, "instruction": "Summarize in less than 50 words",
}


def compile_to(path, *extra):
    subprocess.run([sys.executable, "compile.py", "--output", str(path), *extra], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    directory = tmp_path_factory.mktemp("compiled")
    return compile_to(directory / "first.yaml"), compile_to(directory / "second.yaml")


def test_compile_is_byte_identical_and_equals_the_committed_pipeline(compiled):
    first, second = compiled
    assert first == second
    committed = (REPO_ROOT / "pipeline.yaml").read_bytes()
    assert first == committed, "pipeline.yaml is stale: run `python compile.py --output pipeline.yaml`"


def test_root_inputs_carry_every_vertex_parameter_with_its_type(compiled):
    spec = yaml.safe_load(compiled[0])
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert len(VERTEX_RLHF_INTERFACE) == 19 == len(VERTEX_PARAMETERS)
    for name, kfp_type in VERTEX_RLHF_INTERFACE.items():
        assert inputs[name]["parameterType"] == kfp_type, name
    for parameter in PARAMETERS:
        definition = inputs[parameter.name]
        assert definition["parameterType"] == KFP_TYPES[parameter.annotation]
        assert definition.get("description"), f"{parameter.name} has no description in the UI"
        if parameter.required:
            assert "defaultValue" not in definition and not definition.get("isOptional")
        elif parameter.default is not None:
            assert definition["defaultValue"] == parameter.default


def steps(spec):
    """Every step of the DAG, in its branches too: task name -> (task, the condition groups it is in)."""
    found = {}

    def walk(dag, groups):
        for name, task in dag["tasks"].items():
            component = spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"], groups + [task])
            else:
                found[name] = (task, groups)

    walk(spec["root"]["dag"], [])
    return found


def test_every_step_has_a_display_name_and_the_code_version_in_its_cache_key(compiled):
    spec = yaml.safe_load(compiled[0])
    from components.common.code_version import code_version

    found = steps(spec)
    assert len(found) >= 13
    for name, (task, _) in found.items():
        assert task.get("taskInfo", {}).get("name"), name
        version = task["inputs"]["parameters"]["code_version"]["runtimeValue"]["constant"]
        assert version == code_version(), name


def test_the_dag_branches_on_the_plan_and_the_sft_dataset(compiled):
    """Each optional stage and its stand-in sit in the two branches of one If/Else; the conditions
    compare the planning step's outputs (or sft_dataset) with the values components/common/algorithms.py
    returns, so a branch not taken shows as skipped."""
    from components.common.algorithms import ONLINE, TRAIN

    found = steps(yaml.safe_load(compiled[0]))
    pairs = {
        ("supervised-fine-tuning", "skip-supervised-fine-tuning"): "pipelinechannel--sft_dataset",
        ("train-reward-model", "skip-reward-model"): f"pipelinechannel--plan-stages-reward_model'] == '{TRAIN}'",
        ("tune-policy", "tune-preference"): f"pipelinechannel--plan-stages-policy_tuning'] == '{ONLINE}'",
    }
    for (taken, other), condition in pairs.items():
        (_, if_groups), (_, else_groups) = found[taken], found[other]
        if_condition = if_groups[-1]["triggerPolicy"]["condition"]
        else_condition = else_groups[-1]["triggerPolicy"]["condition"]
        assert condition in if_condition and else_condition.startswith("!(") and condition in else_condition
        assert if_groups[0] is else_groups[0]  # one If/Else pair
    never_skipped = {name for name, (_, groups) in found.items() if not groups}
    assert never_skipped == {"resolve-base-model", "plan-stages", "prepare-preference-data", "prepare-prompt-data",
                             "evaluate", "summarize-run", "upload-model", "upload-training-logs"}


def test_the_trainers_and_the_evaluation_run_on_the_accelerator_the_parameters_name(compiled):
    """Evaluation loads three models and generates with two: it gets the trainers' machine, not a CPU node."""
    executors = yaml.safe_load(compiled[0])["deploymentSpec"]["executors"]
    placed = {name for name, executor in executors.items() if "resources" in executor["container"]}
    assert placed == {"exec-supervised-fine-tuning", "exec-train-reward-model", "exec-tune-policy",
                      "exec-tune-preference", "exec-evaluate"}
    for name in placed:
        accelerator = executors[name]["container"]["resources"]["accelerator"]
        assert "accelerator_type" in accelerator["resourceType"] and "accelerator_count" in accelerator["resourceCount"]


def test_resource_parameters_reach_the_steps_inside_branches(compiled):
    """A step in a dsl.If branch reads its accelerator and limits from parameters that every group
    around it must pass down (kfp does not do it by itself: pipeline/resources.py)."""
    spec = yaml.safe_load(compiled[0])
    resources = ("accelerator_type", "accelerator_count", "cpu_limit", "memory_limit")
    branched = {name: groups for name, (task, groups) in steps(spec).items() if groups}
    assert {"train-reward-model", "tune-policy", "tune-preference", "supervised-fine-tuning"} <= set(branched)
    for name in ("train-reward-model", "tune-policy", "tune-preference", "supervised-fine-tuning"):
        for group in branched[name]:
            declared = spec["components"][group["componentRef"]["name"]]["inputDefinitions"]["parameters"]
            assert {f"pipelinechannel--{r}" for r in resources} <= set(declared), (name, group["taskInfo"])


def test_image_option_sets_every_component_image(tmp_path):
    spec = yaml.safe_load(compile_to(tmp_path / "p.yaml", "--image", "europe-docker.pkg.dev/p/r/rlhf:1"))
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"europe-docker.pkg.dev/p/r/rlhf:1"}


def test_the_course_parameter_values_pass_vertex_pipeline_job(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name="rlhf-course",
        template_path=str(REPO_ROOT / "pipeline.yaml"),
        pipeline_root="gs://bucket/root",
        parameter_values=COURSE_PARAMETER_VALUES,
        project="my-project",
        location="us-central1",
        credentials=AnonymousCredentials(),
    )
    sent = job._gca_resource.runtime_config.parameter_values
    assert sent["reward_model_train_steps"] == 1410 and sent["large_model_reference"] == "llama-2-7b"
    with pytest.raises(ValueError):
        aiplatform.PipelineJob(
            display_name="bad", template_path=str(REPO_ROOT / "pipeline.yaml"), pipeline_root="gs://b/r",
            parameter_values={**COURSE_PARAMETER_VALUES, "no_such_parameter": 1},
            project="my-project", location="us-central1", credentials=AnonymousCredentials(),
        )
