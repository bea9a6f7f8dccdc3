"""The RLHF DAG: data preparation, optional supervised fine-tuning, reward model, policy tuning
(online RL or DPO/KTO), evaluation.

`build_pipeline(image)` returns the `@dsl.pipeline` function. Its signature and docstring are
generated from pipeline/parameters.py, so every parameter has exactly one default and one
description, and the pipeline UI shows them.

One compiled pipeline serves every algorithm: a planning step (components/common/algorithms.py)
decides, from `algorithm`, `reward_function`, `preference_dataset` and `train_reward_model_for_eval`,
whether the reward model is trained and whether the policy is tuned online or offline; the DAG
branches on its outputs with `dsl.If`/`dsl.Else`, and `dsl.OneOf` hands the branch's result on. A
branch that does not run shows as skipped in the pipeline UI. When no reward model is trained, a
small step stands in for it with an artifact that says so (components/common/models.py); without an
`sft_dataset`, one stands in for the fine-tuned model with a reference to the base model.
"""

import inspect
from typing import NamedTuple

from kfp import dsl

from components.common.algorithms import ONLINE, TRAIN
from components.common.code_version import code_version
from components.evaluate.component import evaluate
from components.plan_stages.component import plan_stages
from components.prepare_preference_data.component import prepare_preference_data
from components.prepare_prompt_data.component import prepare_prompt_data
from components.resolve_base_model.component import resolve_base_model
from components.summarize_run.component import summarize_run
from components.supervised_fine_tuning.component import skip_supervised_fine_tuning, supervised_fine_tuning
from components.train_reward_model.component import skip_reward_model, train_reward_model
from components.tune_policy.component import tune_policy
from components.tune_preference.component import tune_preference
from components.upload_model.component import upload_model, upload_training_logs
from pipeline.image import DEFAULT_IMAGE
from pipeline.kubeflow_train_jobs import TrainJobPlacement
from pipeline.parameters import PARAMETERS
from pipeline.resources import apply_training_resources
from pipeline.vertex_custom_jobs import CUSTOM_JOB_INPUTS, TRAINING_STEPS, WorkerPools

PIPELINE_NAME = "rlhf-pipeline"
# A training step that fails (a preempted VM on Vertex) runs again this many times, resuming from its
# last checkpoint.
TRAINING_RETRIES = 2
PIPELINE_DESCRIPTION = (
    "Reinforcement learning from human feedback: prepares preference and prompt data, optionally "
    "fine-tunes the base model on demonstrations, trains a reward model on the pairs, tunes the policy "
    "with PPO, GRPO or RLOO against it and/or a rule reward (minus a KL penalty to the initial policy) or "
    "directly on the pairs with DPO or KTO, and evaluates base against tuned policy in a report. "
    "Accepts the parameters of Vertex AI's rlhf_pipeline under the same names."
)

# Display names shown on each task in the pipeline UI.
DISPLAY_NAMES = {
    "resolve": "Resolve base model",
    "plan": "Plan stages",
    "preference": "Prepare preference data",
    "prompts": "Prepare prompt data",
    "sft": "Supervised fine-tuning",
    "no_sft": "No supervised fine-tuning",
    "reward": "Train reward model",
    "no_reward": "No reward model",
    "policy": "Tune policy (RL)",
    "preference_tuning": "Tune policy on pairs (DPO/KTO)",
    "evaluate": "Evaluate base vs tuned policy",
    "summary": "Summarize run",
    "upload": "Upload and deploy tuned model",
    "logs": "Upload training logs to TensorBoard",
}


# Vertex's rlhf_pipeline outputs the first two; run_summary is ours.
PipelineOutputs = NamedTuple(
    "Outputs",
    [("model_resource_name", str), ("endpoint_resource_name", str), ("run_summary", dsl.Artifact)],
)


def _signature() -> inspect.Signature:
    parameters = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if p.required else p.default,
            annotation=p.annotation,
        )
        for p in sorted(PARAMETERS, key=lambda p: not p.required)  # required ones first
    ]
    return inspect.Signature(parameters, return_annotation=PipelineOutputs)


def _docstring() -> str:
    lines = [PIPELINE_DESCRIPTION, "", "Args:"]
    lines += [f"    {p.name}: {p.description}" for p in PARAMETERS]
    return "\n".join(lines)


def _components(image: str) -> dict:
    def build(func):
        return dsl.component(func, base_image=image, install_kfp_package=False)

    return {
        "resolve": build(resolve_base_model),
        "plan": build(plan_stages),
        "preference": build(prepare_preference_data),
        "prompts": build(prepare_prompt_data),
        "sft": build(supervised_fine_tuning),
        "no_sft": build(skip_supervised_fine_tuning),
        "reward": build(train_reward_model),
        "no_reward": build(skip_reward_model),
        "policy": build(tune_policy),
        "preference_tuning": build(tune_preference),
        "evaluate": build(evaluate),
        "summary": build(summarize_run),
        "upload": build(upload_model),
        "logs": build(upload_training_logs),
    }


class Wiring:
    """Calls each component with its inputs by name: a pipeline parameter reaches every component whose
    signature names it, so the forwarding of knobs is generated, never written out. What is not a
    parameter (an upstream artifact or output, the code version, the pipeline root) is given by name
    in `inputs` or in `self.values`."""

    def __init__(self, values: dict):
        self.values = values  # the pipeline parameters and the run-wide values, by name

    def __call__(self, component, task: str, **inputs):
        arguments = {}
        for name, spec in component.component_spec.inputs.items():
            if name in inputs:
                arguments[name] = inputs[name]
            elif name in self.values:
                arguments[name] = self.values[name]
            elif not spec.optional:
                raise TypeError(f"the {task} step takes `{name}`, which is neither a pipeline parameter "
                                "(pipeline/parameters.py) nor wired in pipeline/dag.py")
        unknown = set(inputs) - set(component.component_spec.inputs)
        if unknown:
            raise TypeError(f"the {task} step takes no {', '.join(sorted(unknown))}")
        return component(**arguments).set_display_name(DISPLAY_NAMES[task])


def build_pipeline(image: str = DEFAULT_IMAGE, version: str | None = None, worker_pools: WorkerPools | None = None,
                   train_jobs: TrainJobPlacement | None = None):
    """The pipeline function for components running in `image`, with `version` in every cache key; with
    `worker_pools`, the Vertex AI flavour whose training steps are custom jobs on those machines
    (pipeline/vertex_custom_jobs.py); with `train_jobs`, the Kubeflow flavour whose training steps launch
    TrainJobs of those nodes (pipeline/kubeflow_train_jobs.py)."""
    components = _components(image)
    custom_jobs = {task: worker_pools.custom_job(components[task]) for task in TRAINING_STEPS} if worker_pools else {}
    version = version or code_version()
    signature = _signature()
    names = list(signature.parameters)

    def rlhf_pipeline(*args):
        p = dict(zip(names, args))
        call = Wiring({**p, "code_version": version, "pipeline_root": dsl.PIPELINE_ROOT_PLACEHOLDER,
                       "pipeline_job_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER})

        def on_training_machine(step):
            apply_training_resources(
                step, p["accelerator_type"], p["accelerator_count"], p["cpu_limit"], p["memory_limit"]
            )
            return step

        def training(task: str, **inputs):
            """A training step: on the training machine(s), retried from its last checkpoint."""
            if task in custom_jobs:
                step = call(custom_jobs[task], task, **inputs, **CUSTOM_JOB_INPUTS)
            elif train_jobs is not None:
                step = train_jobs.launcher(call(components[task], task, **inputs))
            else:
                step = on_training_machine(call(components[task], task, **inputs))
            return step.set_retry(num_retries=TRAINING_RETRIES)

        base = call(components["resolve"], "resolve")
        plan = call(components["plan"], "plan")
        preference = call(components["preference"], "preference", base_model=base.outputs["model"])
        prompts = call(components["prompts"], "prompts", base_model=base.outputs["model"])
        # From here on, step counts are those the data stages derived from the data (0 in a parameter
        # means "derive it"), never the parameters' own values.
        call.values.update(
            reward_model_train_steps=preference.outputs["reward_model_train_steps"],
            preference_tuning_train_steps=preference.outputs["preference_tuning_train_steps"],
            reinforcement_learning_train_steps=prompts.outputs["reinforcement_learning_train_steps"],
        )
        preference_data = preference.outputs["preference_data"]

        with dsl.If(p["sft_dataset"] != "", name="supervised-fine-tuning"):
            sft = training("sft", base_model=base.outputs["model"], preference_data=preference_data)
        with dsl.Else(name="no-supervised-fine-tuning"):
            no_sft = call(components["no_sft"], "no_sft", base_model=base.outputs["model"])
        start = dsl.OneOf(sft.outputs["model"], no_sft.outputs["model"])  # the base of every later stage
        sft_logs = dsl.OneOf(sft.outputs["tensorboard_logs"], no_sft.outputs["tensorboard_logs"])

        with dsl.If(plan.outputs["reward_model"] == TRAIN, name="reward-model-needed"):
            reward = training("reward", base_model=start, preference_data=preference_data)
        with dsl.Else(name="no-reward-model"):
            no_reward = call(components["no_reward"], "no_reward")
        reward_model = dsl.OneOf(reward.outputs["reward_model"], no_reward.outputs["reward_model"])
        reward_logs = dsl.OneOf(reward.outputs["tensorboard_logs"], no_reward.outputs["tensorboard_logs"])

        with dsl.If(plan.outputs["policy_tuning"] == ONLINE, name="online-rl"):
            online = training("policy", base_model=start, reward_model=reward_model,
                              prompt_data=prompts.outputs["prompt_data"])
        with dsl.Else(name="offline-preference-tuning"):
            offline = training("preference_tuning", base_model=start, preference_data=preference_data)
        policy = dsl.OneOf(online.outputs["policy"], offline.outputs["policy"])
        policy_logs = dsl.OneOf(online.outputs["tensorboard_logs"], offline.outputs["tensorboard_logs"])

        # Side effects: never cached.
        call(components["logs"], "logs", sft_logs=sft_logs, reward_model_logs=reward_logs,
             policy_logs=policy_logs).set_caching_options(False)
        upload = call(components["upload"], "upload", policy=policy).set_caching_options(False)

        # Evaluation loads up to three models and generates with two: it needs the trainers' machine.
        evaluation = on_training_machine(call(
            components["evaluate"], "evaluate", base_model=start, policy=policy, reward_model=reward_model,
            preference_data=preference_data, prompt_data=prompts.outputs["prompt_data"],
            reward_model_logs=reward_logs, policy_logs=policy_logs,
        ))

        summary = call(
            components["summary"], "summary", evaluation=evaluation.outputs["evaluation"],
            reward_model=reward_model, policy=policy, report=evaluation.outputs["report"],
        )
        return PipelineOutputs(
            model_resource_name=upload.outputs["model_resource_name"],
            endpoint_resource_name=upload.outputs["endpoint_resource_name"],
            run_summary=summary.outputs["summary"],
        )

    rlhf_pipeline.__signature__ = signature
    rlhf_pipeline.__doc__ = _docstring()
    return dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)(rlhf_pipeline)
