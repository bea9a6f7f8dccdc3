"""KFP wrapper of the run-summary stage."""

from kfp.dsl import HTML, Artifact, Input, Model, Output


def summarize_run(
    evaluation: Input[Artifact],
    policy: Input[Model],
    report: Input[HTML],
    reward_model_train_steps: int,
    reinforcement_learning_train_steps: int,
    preference_tuning_train_steps: int,
    algorithm: str,
    code_version: str,
    summary: Output[Artifact],
    reward_model: Input[Model] = None,
):
    """Write summary.json: evaluation figures, step counts and the outputs' locations (the reward
    model's path null for a run without one)."""
    import json

    from components.common.models import holds_model
    from components.summarize_run.summary import build_summary, write_summary

    with open(evaluation.path, encoding="utf-8") as handle:
        results = json.load(handle)
    content = build_summary(
        results,
        reward_model_train_steps,
        reinforcement_learning_train_steps,
        reward_model_uri=reward_model.uri if reward_model is not None and holds_model(reward_model.path) else None,
        policy_uri=policy.uri,
        report_html_uri=report.uri,
        algorithm=algorithm,
        preference_tuning_train_steps=preference_tuning_train_steps,
    )
    write_summary(content, summary.path)
