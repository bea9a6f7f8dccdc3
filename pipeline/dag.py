"""The RLHF DAG: data preparation, reward model, PPO, evaluation.

`build_pipeline(image)` returns the `@dsl.pipeline` function. Its signature and docstring are
generated from pipeline/parameters.py, so every parameter has exactly one default and one
description, and the pipeline UI shows them.
"""

import inspect
from typing import NamedTuple

from kfp import dsl

from components.common.code_version import code_version
from components.evaluate.component import evaluate
from components.prepare_preference_data.component import prepare_preference_data
from components.prepare_prompt_data.component import prepare_prompt_data
from components.resolve_base_model.component import resolve_base_model
from components.summarize_run.component import summarize_run
from components.train_reward_model.component import train_reward_model
from components.tune_policy.component import tune_policy
from components.upload_model.component import upload_model, upload_training_logs
from pipeline.image import DEFAULT_IMAGE
from pipeline.parameters import PARAMETERS
from pipeline.submission.resources import apply_training_resources

PIPELINE_NAME = "rlhf-pipeline"
# A training step that fails (a preempted VM on Vertex) runs again this many times, resuming from its
# last checkpoint.
TRAINING_RETRIES = 2
PIPELINE_DESCRIPTION = (
    "Reinforcement learning from human feedback: prepares preference and prompt data, trains a reward "
    "model on the pairs, tunes the policy with PPO against it (minus a KL penalty to the initial "
    "policy), and evaluates base against tuned policy in a report. Accepts the parameters of Vertex "
    "AI's rlhf_pipeline under the same names."
)

# Display names shown on each task in the pipeline UI.
DISPLAY_NAMES = {
    "resolve": "Resolve base model",
    "preference": "Prepare preference data",
    "prompts": "Prepare prompt data",
    "reward": "Train reward model",
    "policy": "Tune policy (RL)",
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
        "preference": build(prepare_preference_data),
        "prompts": build(prepare_prompt_data),
        "reward": build(train_reward_model),
        "policy": build(tune_policy),
        "evaluate": build(evaluate),
        "summary": build(summarize_run),
        "upload": build(upload_model),
        "logs": build(upload_training_logs),
    }


def build_pipeline(image: str = DEFAULT_IMAGE, version: str | None = None):
    """The pipeline function for components running in `image`, with `version` in every cache key."""
    components = _components(image)
    version = version or code_version()
    signature = _signature()
    names = list(signature.parameters)

    def rlhf_pipeline(*args):
        p = dict(zip(names, args))
        common = {"seed": p["seed"], "code_version": version}
        # Where the training steps keep checkpoints: a retried or rerun step with equal inputs resumes.
        checkpointing = {
            "checkpoint_root": p["checkpoint_root"],
            "pipeline_root": dsl.PIPELINE_ROOT_PLACEHOLDER,
            "checkpoint_interval_steps": p["checkpoint_interval_steps"],
        }

        base = components["resolve"](
            model_reference=p["large_model_reference"], **common
        ).set_display_name(DISPLAY_NAMES["resolve"])

        preference = components["preference"](
            preference_dataset=p["preference_dataset"],
            eval_dataset=p["eval_dataset"],
            instruction=p["instruction"],
            prompt_sequence_length=p["prompt_sequence_length"],
            target_sequence_length=p["target_sequence_length"],
            batch_size=p["batch_size"],
            reward_model_train_epochs=p["reward_model_train_epochs"],
            reward_model_train_steps=p["reward_model_train_steps"],
            eval_split_fraction=p["eval_split_fraction"],
            max_bad_row_fraction=p["max_bad_row_fraction"],
            length_policy=p["length_policy"],
            dataset_format=p["dataset_format"],
            use_chat_template=p["use_chat_template"],
            dataset_fingerprint=p["preference_data_fingerprint"],
            base_model=base.outputs["model"],
            **common,
        ).set_display_name(DISPLAY_NAMES["preference"])

        prompts = components["prompts"](
            prompt_dataset=p["prompt_dataset"],
            eval_dataset=p["eval_dataset"],
            instruction=p["instruction"],
            prompt_sequence_length=p["prompt_sequence_length"],
            batch_size=p["batch_size"],
            reinforcement_learning_train_epochs=p["reinforcement_learning_train_epochs"],
            reinforcement_learning_train_steps=p["reinforcement_learning_train_steps"],
            eval_split_fraction=p["eval_split_fraction"],
            max_eval_prompts=p["max_eval_prompts"],
            max_bad_row_fraction=p["max_bad_row_fraction"],
            length_policy=p["length_policy"],
            use_chat_template=p["use_chat_template"],
            algorithm=p["algorithm"],
            num_generations=p["num_generations"],
            dataset_fingerprint=p["prompt_data_fingerprint"],
            base_model=base.outputs["model"],
            **common,
        ).set_display_name(DISPLAY_NAMES["prompts"])

        reward = components["reward"](
            base_model=base.outputs["model"],
            reward_model_reference=p["reward_model_reference"],
            preference_data=preference.outputs["preference_data"],
            reward_model_train_steps=preference.outputs["reward_model_train_steps"],
            reward_model_learning_rate_multiplier=p["reward_model_learning_rate_multiplier"],
            batch_size=p["batch_size"],
            reward_model_lora_rank=p["reward_model_lora_rank"],
            use_margin=p["use_margin"],
            use_chat_template=p["use_chat_template"],
            prompt_sequence_length=p["prompt_sequence_length"],
            target_sequence_length=p["target_sequence_length"],
            **common,
            **checkpointing,
        ).set_display_name(DISPLAY_NAMES["reward"]).set_retry(num_retries=TRAINING_RETRIES)
        apply_training_resources(
            reward, p["accelerator_type"], p["accelerator_count"], p["cpu_limit"], p["memory_limit"]
        )

        policy = components["policy"](
            base_model=base.outputs["model"],
            reward_model=reward.outputs["reward_model"],
            prompt_data=prompts.outputs["prompt_data"],
            reinforcement_learning_train_steps=prompts.outputs["reinforcement_learning_train_steps"],
            reinforcement_learning_rate_multiplier=p["reinforcement_learning_rate_multiplier"],
            kl_coeff=p["kl_coeff"],
            batch_size=p["batch_size"],
            ppo_epochs=p["ppo_epochs"],
            ppo_minibatch_size=p["ppo_minibatch_size"],
            sampling_temperature=p["sampling_temperature"],
            missing_eos_penalty=p["missing_eos_penalty"],
            use_chat_template=p["use_chat_template"],
            algorithm=p["algorithm"],
            num_generations=p["num_generations"],
            loss_type=p["loss_type"],
            epsilon=p["epsilon"],
            epsilon_high=p["epsilon_high"],
            scale_rewards=p["scale_rewards"],
            reward_function="",  # the trained reward model; a rule reward needs the reward-model branch made optional
            prompt_sequence_length=p["prompt_sequence_length"],
            target_sequence_length=p["target_sequence_length"],
            policy_lora_rank=p["policy_lora_rank"],
            **common,
            **checkpointing,
        ).set_display_name(DISPLAY_NAMES["policy"]).set_retry(num_retries=TRAINING_RETRIES)
        apply_training_resources(
            policy, p["accelerator_type"], p["accelerator_count"], p["cpu_limit"], p["memory_limit"]
        )

        components["logs"](
            reward_model_logs=reward.outputs["tensorboard_logs"],
            policy_logs=policy.outputs["tensorboard_logs"],
            tensorboard_resource_id=p["tensorboard_resource_id"],
            project=p["project"],
            location=p["location"],
            pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            code_version=version,
        ).set_display_name(DISPLAY_NAMES["logs"]).set_caching_options(False)  # a side effect: never cached

        upload = components["upload"](
            policy=policy.outputs["policy"],
            large_model_reference=p["large_model_reference"],
            deploy_model=p["deploy_model"],
            project=p["project"],
            location=p["location"],
            encryption_spec_key_name=p["encryption_spec_key_name"],
            model_display_name=p["model_display_name"],
            code_version=version,
        ).set_display_name(DISPLAY_NAMES["upload"]).set_caching_options(False)  # a side effect: never cached

        evaluation = components["evaluate"](
            base_model=base.outputs["model"],
            policy=policy.outputs["policy"],
            reward_model=reward.outputs["reward_model"],
            preference_data=preference.outputs["preference_data"],
            prompt_data=prompts.outputs["prompt_data"],
            reward_model_logs=reward.outputs["tensorboard_logs"],
            policy_logs=policy.outputs["tensorboard_logs"],
            prompt_sequence_length=p["prompt_sequence_length"],
            target_sequence_length=p["target_sequence_length"],
            sampling_temperature=p["sampling_temperature"],
            max_eval_prompts=p["max_eval_prompts"],
            gold_scorer=p["gold_scorer"],
            use_chat_template=p["use_chat_template"],
            **common,
        ).set_display_name(DISPLAY_NAMES["evaluate"])
        # Evaluation loads three models and generates with two: it needs the trainers' machine.
        apply_training_resources(
            evaluation, p["accelerator_type"], p["accelerator_count"], p["cpu_limit"], p["memory_limit"]
        )

        summary = components["summary"](
            evaluation=evaluation.outputs["evaluation"],
            reward_model=reward.outputs["reward_model"],
            policy=policy.outputs["policy"],
            report=evaluation.outputs["report"],
            reward_model_train_steps=preference.outputs["reward_model_train_steps"],
            reinforcement_learning_train_steps=prompts.outputs["reinforcement_learning_train_steps"],
            code_version=version,
        ).set_display_name(DISPLAY_NAMES["summary"])
        return PipelineOutputs(
            model_resource_name=upload.outputs["model_resource_name"],
            endpoint_resource_name=upload.outputs["endpoint_resource_name"],
            run_summary=summary.outputs["summary"],
        )

    rlhf_pipeline.__signature__ = signature
    rlhf_pipeline.__doc__ = _docstring()
    return dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)(rlhf_pipeline)
