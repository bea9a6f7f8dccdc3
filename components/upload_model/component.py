"""KFP wrapper of the upload/deploy stage."""

from typing import NamedTuple

from kfp.dsl import Artifact, Input, Model


def upload_model(
    policy: Input[Model],
    large_model_reference: str,
    deploy_model: bool,
    project: str,
    location: str,
    encryption_spec_key_name: str,
    code_version: str,
    model_display_name: str = "",
) -> NamedTuple("Outputs", [("model_resource_name", str), ("endpoint_resource_name", str)]):
    """On Vertex AI, upload the tuned policy to the Model Registry and deploy it when asked.

    Elsewhere it says what it would do; both outputs are empty strings when a step is skipped.
    """
    from collections import namedtuple

    from components.upload_model.serving import UploadConfig, upload_and_deploy

    config = UploadConfig(
        policy_uri=policy.uri,
        policy_path=policy.path,
        large_model_reference=large_model_reference,
        model_display_name=model_display_name or "",
        deploy_model=deploy_model,
        project=project,
        location=location,
        encryption_spec_key_name=encryption_spec_key_name,
    )
    model_name, endpoint_name = upload_and_deploy(config)
    outputs = namedtuple("Outputs", ["model_resource_name", "endpoint_resource_name"])
    return outputs(model_name, endpoint_name)


def upload_training_logs(
    sft_logs: Input[Artifact],
    reward_model_logs: Input[Artifact],
    policy_logs: Input[Artifact],
    tensorboard_resource_id: str,
    project: str,
    location: str,
    pipeline_job_name: str,
    code_version: str,
):
    """Upload the training steps' TensorBoard logs to the Vertex TensorBoard, when one is named."""
    from components.upload_model.tensorboard import upload_tensorboard_logs

    runs = (("supervised_fine_tuning", sft_logs), ("reward_model", reward_model_logs), ("policy", policy_logs))
    for run_name, logs in runs:
        upload_tensorboard_logs(
            logs.path, tensorboard_resource_id, project, location,
            experiment_name=pipeline_job_name, run_name=run_name,
        )
