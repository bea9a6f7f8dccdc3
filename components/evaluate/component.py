"""KFP wrapper of the evaluation stage (pipeline/dag.py turns it into a component)."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output


def evaluate(
    base_model: Input[Model],
    policy: Input[Model],
    prompt_data: Input[Dataset],
    policy_logs: Input[Artifact],
    prompt_sequence_length: int,
    target_sequence_length: int,
    sampling_temperature: float,
    max_eval_prompts: int,
    gold_scorer: str,
    use_chat_template: str,
    num_generations: int,
    seed: int,
    rollout_engine: str,
    vllm_gpu_memory_utilization: float,
    code_version: str,
    metrics: Output[Metrics],
    report: Output[HTML],
    report_markdown: Output[Markdown],
    predictions: Output[Dataset],
    evaluation: Output[Artifact],
    reward_model: Input[Model] = None,
    preference_data: Input[Dataset] = None,
    reward_model_logs: Input[Artifact] = None,
    reward_function: str = "",
):
    """Compare the tuned policy with the base model on held-out data; write reports and predictions.

    Without a reward model (none given, or one standing for no model: a run tuned with a reward
    function alone, or DPO/KTO without train_reward_model_for_eval) the reward-model figures are null.
    The held-out pairs of preference_data (when given) also measure the tuned policy's implicit reward
    against the base. With a reward_function (a built-in, file.py:name or module:name) the accuracy
    of both policies, sampled and greedy, is measured with it.
    """
    arguments = dict(locals())  # this step's parameters by name, for its settings (common/stage_settings.py)
    import os
    from pathlib import Path

    from components.common.kfp_outputs import record_metrics
    from components.common.models import holds_model, model_source
    from components.common.stage_settings import settings_from_arguments
    from components.evaluate.config import EvaluationConfig
    from components.evaluate.evaluation import EvaluationOutputs, run_evaluation

    config = settings_from_arguments(EvaluationConfig, arguments)
    os.makedirs(predictions.path, exist_ok=True)
    has_reward_model = reward_model is not None and holds_model(reward_model.path)
    result = run_evaluation(
        config,
        base_source=model_source(base_model.path),
        tuned_source=model_source(policy.path),
        reward_source=model_source(reward_model.path) if has_reward_model else None,
        eval_pairs_path=os.path.join(preference_data.path, "eval.jsonl") if preference_data is not None else None,
        eval_prompts_path=os.path.join(prompt_data.path, "eval.jsonl"),
        reward_logs_dir=reward_model_logs.path if reward_model_logs is not None else None,
        policy_logs_dir=policy_logs.path,
        outputs=EvaluationOutputs(
            report_html=Path(report.path),
            report_markdown=Path(report_markdown.path),
            predictions_dir=Path(predictions.path),
            evaluation_json=Path(evaluation.path),
        ),
    )
    record_metrics(metrics, result.metrics)
