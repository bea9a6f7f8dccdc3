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
from pipeline.parameters import PARAMETERS
from pipeline.resources import apply_training_resources

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
        lengths = {
            "prompt_sequence_length": p["prompt_sequence_length"],
            "target_sequence_length": p["target_sequence_length"],
        }

        def on_training_machine(task):
            apply_training_resources(
                task, p["accelerator_type"], p["accelerator_count"], p["cpu_limit"], p["memory_limit"]
            )
            return task

        base = components["resolve"](
            model_reference=p["large_model_reference"], **common
        ).set_display_name(DISPLAY_NAMES["resolve"])

        plan = components["plan"](
            algorithm=p["algorithm"],
            reward_function=p["reward_function"],
            preference_dataset=p["preference_dataset"],
            train_reward_model_for_eval=p["train_reward_model_for_eval"],
            code_version=version,
        ).set_display_name(DISPLAY_NAMES["plan"])

        preference = components["preference"](
            preference_dataset=p["preference_dataset"],
            eval_dataset=p["eval_dataset"],
            instruction=p["instruction"],
            batch_size=p["batch_size"],
            reward_model_train_epochs=p["reward_model_train_epochs"],
            reward_model_train_steps=p["reward_model_train_steps"],
            algorithm=p["algorithm"],
            reinforcement_learning_train_epochs=p["reinforcement_learning_train_epochs"],
            reinforcement_learning_train_steps=p["reinforcement_learning_train_steps"],
            eval_split_fraction=p["eval_split_fraction"],
            max_bad_row_fraction=p["max_bad_row_fraction"],
            length_policy=p["length_policy"],
            dataset_format=p["dataset_format"],
            use_chat_template=p["use_chat_template"],
            dataset_fingerprint=p["preference_data_fingerprint"],
            base_model=base.outputs["model"],
            **lengths,
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

        with dsl.If(p["sft_dataset"] != "", name="supervised-fine-tuning"):
            sft = on_training_machine(components["sft"](
                base_model=base.outputs["model"],
                preference_data=preference.outputs["preference_data"],
                sft_dataset=p["sft_dataset"],
                sft_train_epochs=p["sft_train_epochs"],
                sft_learning_rate_multiplier=p["sft_learning_rate_multiplier"],
                batch_size=p["batch_size"],
                use_chat_template=p["use_chat_template"],
                max_bad_row_fraction=p["max_bad_row_fraction"],
                dataset_fingerprint=p["sft_data_fingerprint"],
                **lengths,
                **common,
                **checkpointing,
            ).set_display_name(DISPLAY_NAMES["sft"]).set_retry(num_retries=TRAINING_RETRIES))
        with dsl.Else(name="no-supervised-fine-tuning"):
            no_sft = components["no_sft"](base_model=base.outputs["model"], code_version=version)
            no_sft.set_display_name(DISPLAY_NAMES["no_sft"])
        start = dsl.OneOf(sft.outputs["model"], no_sft.outputs["model"])  # the base of every later stage
        sft_logs = dsl.OneOf(sft.outputs["tensorboard_logs"], no_sft.outputs["tensorboard_logs"])

        with dsl.If(plan.outputs["reward_model"] == TRAIN, name="reward-model-needed"):
            reward = on_training_machine(components["reward"](
                base_model=start,
                reward_model_reference=p["reward_model_reference"],
                preference_data=preference.outputs["preference_data"],
                reward_model_train_steps=preference.outputs["reward_model_train_steps"],
                reward_model_learning_rate_multiplier=p["reward_model_learning_rate_multiplier"],
                batch_size=p["batch_size"],
                reward_model_lora_rank=p["reward_model_lora_rank"],
                use_margin=p["use_margin"],
                use_chat_template=p["use_chat_template"],
                **lengths,
                **common,
                **checkpointing,
            ).set_display_name(DISPLAY_NAMES["reward"]).set_retry(num_retries=TRAINING_RETRIES))
        with dsl.Else(name="no-reward-model"):
            no_reward = components["no_reward"](algorithm=p["algorithm"], code_version=version)
            no_reward.set_display_name(DISPLAY_NAMES["no_reward"])
        reward_model = dsl.OneOf(reward.outputs["reward_model"], no_reward.outputs["reward_model"])
        reward_logs = dsl.OneOf(reward.outputs["tensorboard_logs"], no_reward.outputs["tensorboard_logs"])

        with dsl.If(plan.outputs["policy_tuning"] == ONLINE, name="online-rl"):
            online = on_training_machine(components["policy"](
                base_model=start,
                reward_model=reward_model,
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
                reward_function=p["reward_function"],
                policy_lora_rank=p["policy_lora_rank"],
                **lengths,
                **common,
                **checkpointing,
            ).set_display_name(DISPLAY_NAMES["policy"]).set_retry(num_retries=TRAINING_RETRIES))
        with dsl.Else(name="offline-preference-tuning"):
            offline = on_training_machine(components["preference_tuning"](
                base_model=start,
                preference_data=preference.outputs["preference_data"],
                algorithm=p["algorithm"],
                train_steps=preference.outputs["preference_tuning_train_steps"],
                learning_rate_multiplier=p["reinforcement_learning_rate_multiplier"],
                batch_size=p["batch_size"],
                dpo_beta=p["dpo_beta"],
                dpo_loss_type=p["dpo_loss_type"],
                kto_desirable_weight=p["kto_desirable_weight"],
                kto_undesirable_weight=p["kto_undesirable_weight"],
                policy_lora_rank=p["policy_lora_rank"],
                use_chat_template=p["use_chat_template"],
                **lengths,
                **common,
                **checkpointing,
            ).set_display_name(DISPLAY_NAMES["preference_tuning"]).set_retry(num_retries=TRAINING_RETRIES))
        policy = dsl.OneOf(online.outputs["policy"], offline.outputs["policy"])
        policy_logs = dsl.OneOf(online.outputs["tensorboard_logs"], offline.outputs["tensorboard_logs"])

        components["logs"](
            sft_logs=sft_logs,
            reward_model_logs=reward_logs,
            policy_logs=policy_logs,
            tensorboard_resource_id=p["tensorboard_resource_id"],
            project=p["project"],
            location=p["location"],
            pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            code_version=version,
        ).set_display_name(DISPLAY_NAMES["logs"]).set_caching_options(False)  # a side effect: never cached

        upload = components["upload"](
            policy=policy,
            large_model_reference=p["large_model_reference"],
            deploy_model=p["deploy_model"],
            project=p["project"],
            location=p["location"],
            encryption_spec_key_name=p["encryption_spec_key_name"],
            model_display_name=p["model_display_name"],
            code_version=version,
        ).set_display_name(DISPLAY_NAMES["upload"]).set_caching_options(False)  # a side effect: never cached

        # Evaluation loads up to three models and generates with two: it needs the trainers' machine.
        evaluation = on_training_machine(components["evaluate"](
            base_model=start,
            policy=policy,
            reward_model=reward_model,
            preference_data=preference.outputs["preference_data"],
            prompt_data=prompts.outputs["prompt_data"],
            reward_model_logs=reward_logs,
            policy_logs=policy_logs,
            sampling_temperature=p["sampling_temperature"],
            max_eval_prompts=p["max_eval_prompts"],
            gold_scorer=p["gold_scorer"],
            reward_function=p["reward_function"],
            use_chat_template=p["use_chat_template"],
            **lengths,
            **common,
        ).set_display_name(DISPLAY_NAMES["evaluate"]))

        summary = components["summary"](
            evaluation=evaluation.outputs["evaluation"],
            reward_model=reward_model,
            policy=policy,
            report=evaluation.outputs["report"],
            reward_model_train_steps=preference.outputs["reward_model_train_steps"],
            reinforcement_learning_train_steps=prompts.outputs["reinforcement_learning_train_steps"],
            preference_tuning_train_steps=preference.outputs["preference_tuning_train_steps"],
            algorithm=p["algorithm"],
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
