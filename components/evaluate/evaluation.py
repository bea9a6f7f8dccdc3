"""The evaluation stage: reward-model accuracy, base vs tuned policy, reports and predictions.

Models are loaded one at a time, each once: the tuned policy (samples and their log-probabilities),
then the base policy (its own samples, and its log-probabilities of the tuned samples for the KL),
then the reward model (held-out pairs and both policies' responses).

With a `reward_function` (a rule reward), each policy also decodes the prompts greedily, and both its
sampled and greedy responses are scored by the function (components/evaluate/accuracy.py). The reward
model is optional: a run tuned with a rule reward alone may have none, and then every reward-model
figure is None (null in evaluation.json, "not measured" in the reports).
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from components.common.data.preparation import holds_data
from components.common.data.transcripts import Prompt
from components.common.models import Placement, free_accelerator_memory, load_causal_lm
from components.common.vllm_rollouts import VllmEngine, start_rollout_engine
from components.common.reward_functions import RewardFunction, check_columns, load_reward_function
from components.common.reward_scoring import RewardScorer
from components.evaluate.accuracy import RuleRewards, accuracy_figures, row_values, rule_rewards
from components.evaluate.config import EvaluationConfig
from components.evaluate.curves import Curve, read_curves, render_curve_png
from components.common.canonical_data import CanonicalPair, read_preference_pairs
from components.evaluate.eval_data import EvalPrompt, read_eval_prompt_rows
from components.common.registry import GoldScorer
from components.evaluate.gold_scoring import gold_scores, resolve_gold_scorer
from components.common.implicit_reward import IMPLICIT_REWARD_KEYS, implicit_reward_accuracy
from components.common.metrics import (
    correct_orderings,
    mean,
    mean_margin,
    pairwise_accuracy,
    summed_log_ratios,
    win_rate,
    win_shares,
    word_count,
)
from components.evaluate.policy_samples import PolicySamples, log_probs_of_samples, sample_policy
from components.evaluate.predictions import write_predictions
from components.evaluate.report_content import CurvePlot, ReportContent, SideBySideRow
from components.evaluate.report_html import render_html
from components.evaluate.report_markdown import render_markdown
from components.evaluate.tuning_effect import tuning_effect, weights_digest
from components.common.uncertainty import Interval, bootstrap_mean_intervals

BASE_PREDICTIONS_FILE = "base_predictions.jsonl"
TUNED_PREDICTIONS_FILE = "tuned_predictions.jsonl"
BASE_GREEDY_PREDICTIONS_FILE = "base_greedy_predictions.jsonl"  # written only with a reward function
TUNED_GREEDY_PREDICTIONS_FILE = "tuned_greedy_predictions.jsonl"
CURVES_SUBDIR = "curves"
REWARD_MODEL_STAGE = "reward model"
POLICY_STAGE = "policy"


@dataclass(frozen=True)
class EvaluationOutputs:
    """Where the stage writes: two report files, a predictions folder and the evaluation.json file."""

    report_html: Path
    report_markdown: Path
    predictions_dir: Path
    evaluation_json: Path


@dataclass
class EvaluationResult:
    evaluation: dict  # exactly the content of evaluation.json
    metrics: dict[str, float]  # flat scalars for the pipeline UI


@dataclass
class _PolicyPhase:
    samples: PolicySamples
    kl_log_probs: list[torch.Tensor]  # this policy's log-probabilities of the TUNED samples
    vocabulary: dict[str, int]
    templated: bool = False  # the policy reads its prompts through its chat template
    greedy: PolicySamples | None = None  # greedy responses, only with a reward function
    weights: str = ""  # a digest of the weights (tuning_effect.weights_digest)
    rendered_prompts: list[str] = dataclasses.field(default_factory=list)  # the prompts as this policy read them


def _greedy_samples(
    model, formatter, prompts: list[Prompt], config: EvaluationConfig, name: str, sampled: PolicySamples, wanted: bool,
    engine: VllmEngine | None = None,
) -> PolicySamples | None:
    """The greedy responses when `wanted` (a reward function is set): the samples themselves at temperature 0."""
    if not wanted:
        return None
    if config.temperature == 0:
        return sampled
    return sample_policy(model, formatter, prompts, dataclasses.replace(config, temperature=0.0), f"{name} (greedy)",
                         engine)


def evaluation_engine(config: EvaluationConfig, tuned_source: str, placement: Placement) -> VllmEngine | None:
    """The vLLM engine that samples both policies (built from the tuned one; the base's weights are put in
    for its turn), or None where transformers' `generate` samples (`config.rollout_engine`)."""
    engine, line = start_rollout_engine(
        config.rollout_engine, tuned_source, dtype=placement.dtype, seed=config.seed,
        max_model_len=config.max_prompt_tokens + config.max_new_tokens,
        gpu_memory_utilization=config.vllm_gpu_memory_utilization,
    )
    print(line, flush=True)
    return engine


def _tuned_phase(
    source: str, prompts: list[Prompt], config: EvaluationConfig, placement: Placement, greedy: bool = False,
    engine: VllmEngine | None = None,
) -> _PolicyPhase:
    model, formatter = load_causal_lm(source, placement, config.use_chat_template)
    samples = sample_policy(model, formatter, prompts, config, "tuned", engine)
    log_probs = log_probs_of_samples(model, samples, config.temperature, "tuned")
    greedy_samples = _greedy_samples(model, formatter, prompts, config, "tuned", samples, greedy, engine)
    return _PolicyPhase(samples, log_probs, formatter.tokenizer.get_vocab(), formatter.templated, greedy_samples,
                        weights_digest(model), formatter.prompts(prompts))


def _base_phase(
    source: str,
    prompts: list[Prompt],
    tuned: _PolicyPhase,
    config: EvaluationConfig,
    placement: Placement,
    greedy: bool = False,
    engine: VllmEngine | None = None,
) -> _PolicyPhase:
    model, formatter = load_causal_lm(source, placement, config.use_chat_template)
    vocabulary = formatter.tokenizer.get_vocab()
    if vocabulary != tuned.vocabulary:
        raise ValueError(
            f"the base model {source} and the tuned policy use different tokenizers; the KL between "
            "them needs the tuned policy to be a fine-tune of the base model"
        )
    if engine is not None:
        engine.load_weights(model)
    samples = sample_policy(model, formatter, prompts, config, "base", engine)
    log_probs = log_probs_of_samples(model, tuned.samples, config.temperature, "base")
    greedy_samples = _greedy_samples(model, formatter, prompts, config, "base", samples, greedy, engine)
    return _PolicyPhase(samples, log_probs, vocabulary, formatter.templated, greedy_samples, weights_digest(model),
                        formatter.prompts(prompts))


def _rule_phase(
    reward: RewardFunction, rows: list[EvalPrompt], phase: _PolicyPhase, name: str
) -> RuleRewards:
    """The reward function's rewards of one policy's sampled and greedy responses."""
    print(f"{name} policy: scoring sampled and greedy responses with reward function {reward.name}", flush=True)
    return RuleRewards(
        sampled=rule_rewards(reward, rows, phase.samples, phase.templated),
        greedy=rule_rewards(reward, rows, phase.greedy, phase.templated),
    )


def _score(scorer: RewardScorer, prompts: list[Prompt], responses: list[str], batch_size: int, what: str) -> list[float]:
    scores = [
        scorer.score(prompts[start : start + batch_size], responses[start : start + batch_size])
        for start in tqdm(range(0, len(prompts), batch_size), desc=f"reward model: {what}", unit="batch")
    ]
    return torch.cat(scores).tolist()


@dataclass
class _RewardPhase:
    chosen: list[float]
    rejected: list[float]
    base: list[float]
    tuned: list[float]


def _reward_phase(
    source: str,
    pairs: list[CanonicalPair],
    prompts: list[Prompt],
    base_texts: list[str],
    tuned_texts: list[str],
    config: EvaluationConfig,
    placement: Placement,
) -> _RewardPhase:
    scorer = RewardScorer(
        source,
        placement,
        batch_size=config.reward_batch_size,
        max_tokens=config.reward_max_tokens,
        use_chat_template=config.use_chat_template,
    )
    pair_prompts = [p.prompt for p in pairs]
    size = config.reward_batch_size
    return _RewardPhase(
        chosen=_score(scorer, pair_prompts, [p.chosen for p in pairs], size, "chosen answers"),
        rejected=_score(scorer, pair_prompts, [p.rejected for p in pairs], size, "rejected answers"),
        base=_score(scorer, prompts, base_texts, size, "base responses"),
        tuned=_score(scorer, prompts, tuned_texts, size, "tuned responses"),
    )


def _policy_intervals(
    rewards: "_RewardPhase | None",
    base_gold: list[float] | None,
    tuned_gold: list[float] | None,
    seed: int,
) -> dict[str, Interval]:
    """Bootstrap intervals of the policy figures, by figure name; the reward ones only with a reward
    model, the gold ones only with gold scores.

    One resampling of the prompts serves every figure, so that base and tuned answers to a prompt
    stay together in the paired ones (win rate, tuned minus base).
    """
    per_prompt = {}
    if rewards is not None:
        base = torch.tensor(rewards.base, dtype=torch.float64)
        tuned = torch.tensor(rewards.tuned, dtype=torch.float64)
        per_prompt.update(
            win_rate=win_shares(tuned, base), base_mean_reward=base, tuned_mean_reward=tuned,
            tuned_minus_base_reward=tuned - base,
        )
    if base_gold is not None and tuned_gold is not None:
        base_g, tuned_g = torch.tensor(base_gold, dtype=torch.float64), torch.tensor(tuned_gold, dtype=torch.float64)
        per_prompt.update(
            base_gold_score=base_g, tuned_gold_score=tuned_g, tuned_minus_base_gold_score=tuned_g - base_g
        )
    if not per_prompt:
        return {}
    return dict(zip(per_prompt, bootstrap_mean_intervals(list(per_prompt.values()), seed)))


def _reward_model_section(rewards: "_RewardPhase | None", pairs: list[CanonicalPair], seed: int) -> dict:
    """evaluation.json's `reward_model` section; every figure None without a reward model."""
    if rewards is None:
        return {"eval_accuracy": None, "eval_accuracy_ci": None, "eval_pairs": None}
    return {
        "eval_accuracy": pairwise_accuracy(rewards.chosen, rewards.rejected),
        "eval_accuracy_ci": bootstrap_mean_intervals([correct_orderings(rewards.chosen, rewards.rejected)], seed)[0],
        "eval_pairs": len(pairs),
    }


def _reward_figures(rewards: "_RewardPhase | None", policy_ci: dict[str, Interval]) -> dict:
    """The reward-model figures of the `policy` section; None without a reward model."""
    if rewards is None:
        names = ("base_mean_reward", "tuned_mean_reward", "tuned_minus_base_reward", "win_rate")
        return {key: None for name in names for key in (name, f"{name}_ci")}
    return {
        "base_mean_reward": mean(rewards.base),
        "base_mean_reward_ci": policy_ci["base_mean_reward"],
        "tuned_mean_reward": mean(rewards.tuned),
        "tuned_mean_reward_ci": policy_ci["tuned_mean_reward"],
        "tuned_minus_base_reward": mean(rewards.tuned) - mean(rewards.base),
        "tuned_minus_base_reward_ci": policy_ci["tuned_minus_base_reward"],
        "win_rate": win_rate(rewards.tuned, rewards.base),
        "win_rate_ci": policy_ci["win_rate"],
    }


def _curve_plots(curves: list[Curve], predictions_dir: Path) -> list[CurvePlot]:
    """Write each of the stages' curves as a PNG in the predictions folder, keep the bytes for the report."""
    plots = []
    for curve in tqdm(curves, desc="training curves", unit="plot"):
        if not curve.values:
            continue
        png = render_curve_png(curve)
        filename = f"{CURVES_SUBDIR}/{curve.file_stem}.png"
        (predictions_dir / filename).parent.mkdir(parents=True, exist_ok=True)
        (predictions_dir / filename).write_bytes(png)
        plots.append(CurvePlot(curve, png, filename))
    return plots


def implicit_reward_figures(tuned_source: str, base_source: str, pairs: list, config: EvaluationConfig,
                            placement: Placement) -> dict:
    """The implicit-reward figures of the tuned policy on the held-out pairs; None without pairs."""
    if not pairs:
        return dict.fromkeys(IMPLICIT_REWARD_KEYS)
    figures = implicit_reward_accuracy(tuned_source, base_source, pairs, placement, config.use_chat_template,
                                       config.max_prompt_tokens, config.max_new_tokens, seed=config.seed)
    free_accelerator_memory()
    return figures


def run_evaluation(
    config: EvaluationConfig,
    *,
    base_source: str,
    tuned_source: str,
    reward_source: str | None,
    eval_pairs_path: str | Path | None,
    eval_prompts_path: str | Path,
    reward_logs_dir: str | Path | None,
    policy_logs_dir: str | Path | None,
    outputs: EvaluationOutputs,
    gold_scorers: dict[str, GoldScorer] | None = None,
    placement: Placement | None = None,
) -> EvaluationResult:
    """Evaluate the tuned policy against the base model and write every output.

    `gold_scorers` replaces the registered gold scorers (components/common/registry.py) when given;
    `config.gold_scorer` names the one to use ('' = none). Without `reward_source` (None or '') no
    reward model is loaded: the reward-model figures are None. The held-out pairs of `eval_pairs_path`
    (when given) also measure the tuned policy's implicit reward against the base
    (components/common/implicit_reward.py; None without pairs). `config.reward_function` adds the
    accuracy figures (None without it).
    """
    config.validate()
    gold_scorer = resolve_gold_scorer(config.gold_scorer, gold_scorers)
    reward_function = load_reward_function(config.reward_function)
    has_reward_model = bool(reward_source)
    if has_reward_model and eval_pairs_path is None:
        raise ValueError("a reward model is evaluated on held-out preference pairs: give eval_pairs_path")
    # Held-out pairs: the reward model is measured on them; without one they only add the implicit
    # reward, and a run without preference data has an empty file.
    pairs = []
    if eval_pairs_path is not None and (has_reward_model or holds_data(eval_pairs_path)):
        pairs = read_preference_pairs(eval_pairs_path)
    rows = read_eval_prompt_rows(eval_prompts_path, config.max_eval_prompts, config.seed)
    if reward_function is not None:
        check_columns(reward_function, [row.columns for row in rows], f"the held-out prompts ({eval_prompts_path})")
    prompts = [row.prompt for row in rows]
    placement = placement or Placement.detect()

    greedy = reward_function is not None
    engine = evaluation_engine(config, tuned_source, placement)
    tuned = _tuned_phase(tuned_source, prompts, config, placement, greedy, engine)
    free_accelerator_memory()
    base = _base_phase(base_source, prompts, tuned, config, placement, greedy, engine)
    del engine
    free_accelerator_memory()
    base_texts, tuned_texts = base.samples.texts, tuned.samples.texts
    prompt_texts = [prompt.text for prompt in prompts]
    base_rule = tuned_rule = None
    if reward_function is not None:
        tuned_rule = _rule_phase(reward_function, rows, tuned, "tuned")
        base_rule = _rule_phase(reward_function, rows, base, "base")
    rewards = None
    if has_reward_model:
        rewards = _reward_phase(reward_source, pairs, prompts, base_texts, tuned_texts, config, placement)
        free_accelerator_memory()

    implicit = implicit_reward_figures(tuned_source, base_source, pairs, config, placement)

    base_gold = tuned_gold = None
    if gold_scorer is not None:
        base_gold = gold_scores(gold_scorer, prompt_texts, base_texts, "base")
        tuned_gold = gold_scores(gold_scorer, prompt_texts, tuned_texts, "tuned")

    kl_per_prompt = torch.cat(
        [
            summed_log_ratios(tuned_lp, base_lp, batch.response_mask)
            for tuned_lp, base_lp, batch in zip(tuned.kl_log_probs, base.kl_log_probs, tuned.samples.batches)
        ]
    )
    policy_ci = _policy_intervals(rewards, base_gold, tuned_gold, config.seed)
    reward_curves = read_curves(reward_logs_dir, REWARD_MODEL_STAGE)
    policy_curves = read_curves(policy_logs_dir, POLICY_STAGE)
    effect = tuning_effect(policy_curves, config.num_generations, tuned.weights == base.weights)
    if effect.warning:
        print(f"warning: {effect.warning}", flush=True)  # the console shows it under the stage's line
    evaluation = {
        "reward_model": _reward_model_section(rewards, pairs, config.seed),
        "policy": {
            **_reward_figures(rewards, policy_ci),
            "kl_to_base": kl_per_prompt.mean().item(),
            "base_gold_score": mean(base_gold) if base_gold is not None else None,
            "base_gold_score_ci": policy_ci.get("base_gold_score"),
            "tuned_gold_score": mean(tuned_gold) if tuned_gold is not None else None,
            "tuned_gold_score_ci": policy_ci.get("tuned_gold_score"),
            "tuned_minus_base_gold_score": mean(tuned_gold) - mean(base_gold) if tuned_gold is not None else None,
            "tuned_minus_base_gold_score_ci": policy_ci.get("tuned_minus_base_gold_score"),
            **accuracy_figures(base_rule, tuned_rule, config.seed),
            **implicit,
            "base_mean_response_tokens": mean(base.samples.token_counts),
            "tuned_mean_response_tokens": mean(tuned.samples.token_counts),
            "base_truncated_fraction": mean(base.samples.truncated),
            "tuned_truncated_fraction": mean(tuned.samples.truncated),
            "eval_prompts": len(prompts),
        },
        "tuning": effect.to_json(),
    }

    no_gold = [None] * len(prompts)
    outputs.predictions_dir.mkdir(parents=True, exist_ok=True)
    # Vertex's inputs_pretokenized: the text each model tokenized, its chat template applied when it reads one.
    write_predictions(outputs.predictions_dir / BASE_PREDICTIONS_FILE, base.rendered_prompts, base_texts)
    write_predictions(outputs.predictions_dir / TUNED_PREDICTIONS_FILE, tuned.rendered_prompts, tuned_texts)
    if reward_function is not None:
        write_predictions(outputs.predictions_dir / BASE_GREEDY_PREDICTIONS_FILE, base.rendered_prompts,
                          base.greedy.texts)
        write_predictions(outputs.predictions_dir / TUNED_GREEDY_PREDICTIONS_FILE, tuned.rendered_prompts,
                          tuned.greedy.texts)
    count = len(prompts)
    content = ReportContent(
        evaluation=evaluation,
        reward_margin=mean_margin(rewards.chosen, rewards.rejected) if rewards is not None else None,
        base_mean_words=mean([word_count(t) for t in base_texts]),
        tuned_mean_words=mean([word_count(t) for t in tuned_texts]),
        rows=[
            SideBySideRow(*cells)
            for cells in zip(
                tuned.rendered_prompts, base_texts, tuned_texts,
                rewards.base if rewards is not None else no_gold, rewards.tuned if rewards is not None else no_gold,
                base_gold or no_gold, tuned_gold or no_gold,
                row_values(base_rule.sampled if base_rule else None, count),
                row_values(tuned_rule.sampled if tuned_rule else None, count),
            )
        ],
        plots=_curve_plots(reward_curves + policy_curves, outputs.predictions_dir),
        gold_scorer=config.gold_scorer,
        settings=_settings(config, placement, base_source, tuned_source, reward_source),
        reward_function=config.reward_function,
        sampling=_sampling(config.temperature),
    )
    for path in (outputs.report_html, outputs.report_markdown, outputs.evaluation_json):
        path.parent.mkdir(parents=True, exist_ok=True)
    outputs.report_html.write_text(render_html(content), encoding="utf-8")
    plots_folder = Path(os.path.relpath(outputs.predictions_dir, outputs.report_markdown.parent)).as_posix()
    outputs.report_markdown.write_text(render_markdown(content, config.markdown_rows, plots_folder), encoding="utf-8")
    outputs.evaluation_json.write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    return EvaluationResult(evaluation, _flat_metrics(content))


def _sampling(temperature: float) -> str:
    return f"temperature {temperature:g}" if temperature > 0 else "greedy"


def _settings(
    config: EvaluationConfig, placement: Placement, base_source: str, tuned_source: str, reward_source: str | None
) -> dict[str, str]:
    """What the report lists under Settings."""
    settings = {
        "Base model": base_source,
        "Tuned policy": tuned_source,
        "Reward model": reward_source or "none",
    }
    if config.reward_function:
        settings["Reward function (accuracy)"] = config.reward_function
    settings.update({
        "Sampling": _sampling(config.temperature),
        "Max new tokens": str(config.max_new_tokens),
        "Max prompt tokens": str(config.max_prompt_tokens),
        "Chat template (use_chat_template)": config.use_chat_template,
        "Seed": str(config.seed),
        "Device": f"{placement.device} ({str(placement.dtype).removeprefix('torch.')})",
    })
    return settings


def _flat_metrics(content: ReportContent) -> dict[str, float]:
    """Scalars for the KFP Metrics artifact; gold scores only when computed."""
    reward_model, policy = content.evaluation["reward_model"], content.evaluation["policy"]
    metrics = _scalars({
        "reward_model_eval_accuracy": reward_model["eval_accuracy"],
        "reward_model_eval_accuracy_ci": reward_model["eval_accuracy_ci"],
        "reward_model_eval_mean_margin": content.reward_margin,
        "reward_model_eval_pairs": reward_model["eval_pairs"],
        "base_mean_response_words": content.base_mean_words,
        "tuned_mean_response_words": content.tuned_mean_words,
    })
    metrics.update(_scalars(policy))
    tuning = content.evaluation["tuning"]
    metrics.update(_scalars({"steps_with_learning_signal": tuning["steps_with_learning_signal"],
                             "tuned_equals_base": tuning["tuned_equals_base"]}))
    return metrics


def _scalars(figures: dict) -> dict[str, float]:
    """Figures as KFP scalars, which cannot be lists: an interval as `<name>_low` and `<name>_high`; None left out."""
    scalars = {}
    for name, value in figures.items():
        if isinstance(value, list):
            scalars[f"{name}_low"], scalars[f"{name}_high"] = value
        elif value is not None:
            scalars[name] = float(value)
    return scalars
