"""Evaluation of verifiable tasks: accuracy (mean rule reward) of base and tuned policy, sampled and
greedy, with bootstrap intervals; and the evaluation without a reward model."""

import json
import math
import shutil
import sys
from html import escape
from pathlib import Path

import pytest
import torch

from components.common.errors import UserInputError
from components.common.models import Placement
from components.common.reward_functions import load_reward_function
from components.evaluate.accuracy import ACCURACY_FIGURES, ACCURACY_KEYS, RuleRewards, accuracy_figures
from components.evaluate.config import EvaluationConfig
from components.evaluate.evaluation import EvaluationOutputs, run_evaluation
from components.evaluate.report_content import ACCURACY_GUIDE, NO_REWARD_MODEL, format_estimate
from components.common.uncertainty import bootstrap_mean_intervals
from components.summarize_run.summary import build_summary
from tiny_models import PROMPTS, build_causal_lm

CPU = Placement(torch.device("cpu"), torch.float32)
SEED = 3
# Ground truths of the held-out prompts, words the tiny policies can write; the last prompt has none.
TRUTHS = ["the cat", "dog park", "happy", "a short post", "good day", "cat mat", "yes no", None]
EVAL_PROMPTS = PROMPTS + ["the cat sat [summary]:", "my post about a dog [summary]:", "it was sad [summary]:"]

RULE_FILE = '''
CALLS = []


def words_found(completions, ground_truth, prompts=None, completion_ids=None, **kwargs):
    """Share of the ground truth's words the completion contains; None without a ground truth."""
    CALLS.append({"prompts": prompts, "completions": completions, "completion_ids": completion_ids,
                  "ground_truth": ground_truth, "keywords": sorted(kwargs)})
    rewards = []
    for completion, truth in zip(completions, ground_truth):
        if truth is None:
            rewards.append(None)
            continue
        text = completion if isinstance(completion, str) else completion[0]["content"]
        wanted = truth.split()
        rewards.append(sum(word in text.split() for word in wanted) / len(wanted))
    return rewards
'''
RULE_MODULE = "rlhf_reward_function_rule"  # the module name reward_functions gives rule.py


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    from tiny_models import build_length_reward_model

    root = tmp_path_factory.mktemp("accuracy-models")
    return {
        "base": str(build_causal_lm(root / "base", seed=0)),
        "tuned": str(build_causal_lm(root / "tuned", seed=1)),
        "reward": str(build_length_reward_model(root / "reward")),
    }


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _prompt_row(prompt: str, truth: str | None) -> dict:
    return {"prompt": prompt, "columns": {"ground_truth": truth}} if truth is not None else {"prompt": prompt}


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    pairs = [{"prompt": p, "chosen": "the cat", "rejected": "the dog ran in the park and sat on the mat"}
             for p in PROMPTS]
    rule = tmp_path / "rule.py"
    rule.write_text(RULE_FILE)
    return {
        "pairs": _write_jsonl(tmp_path / "preference" / "eval.jsonl", pairs),
        "prompts": _write_jsonl(tmp_path / "prompts" / "eval.jsonl",
                                [_prompt_row(p, t) for p, t in zip(EVAL_PROMPTS, TRUTHS)]),
        "rule": f"{rule}:words_found",
    }


def _config(**overrides) -> EvaluationConfig:
    settings = dict(max_new_tokens=6, max_prompt_tokens=24, temperature=1.0, max_eval_prompts=50, seed=SEED,
                    generation_batch_size=3, reward_batch_size=4)
    settings.update(overrides)
    return EvaluationConfig(**settings)


def _outputs(root: Path) -> EvaluationOutputs:
    return EvaluationOutputs(root / "report.html", root / "report.md", root / "predictions", root / "evaluation.json")


def _evaluate(root: Path, models, data, reward: bool = True, **overrides):
    return run_evaluation(
        _config(**overrides), base_source=models["base"], tuned_source=models["tuned"],
        reward_source=models["reward"] if reward else None, eval_pairs_path=data["pairs"] if reward else None,
        eval_prompts_path=data["prompts"], reward_logs_dir=None, policy_logs_dir=None, outputs=_outputs(root),
        placement=CPU,
    )


def _predictions(path: Path) -> list[str]:
    return [json.loads(line)["prediction"] for line in path.read_text().splitlines()]


def _rule_rewards(spec: str, responses: list[str]) -> list[float | None]:
    """The rule applied here, independently, to written predictions (in file order = prompt order)."""
    function = load_reward_function(spec).function
    return function(completions=responses, ground_truth=TRUTHS, prompts=EVAL_PROMPTS)


# ---------------------------------------------------------------- the figures themselves


def test_accuracy_leaves_out_prompts_without_a_reward_and_pairs_the_rest():
    nan = math.nan
    base = RuleRewards(sampled=[1.0, 0.0, nan, 1.0, 0.0], greedy=[1.0, 1.0, 0.0, 0.0, 0.0])
    tuned = RuleRewards(sampled=[1.0, 1.0, 1.0, 1.0, 1.0], greedy=[0.0, 1.0, 1.0, 1.0, nan])
    figures = accuracy_figures(base, tuned, seed=0)
    assert set(figures) == set(ACCURACY_KEYS)
    assert figures["accuracy_rows_scored"] == 3  # prompts 2 and 4 lack one of their four rewards
    assert figures["base_accuracy"] == pytest.approx(2 / 3) and figures["tuned_accuracy"] == 1.0
    assert figures["base_accuracy_greedy"] == pytest.approx(2 / 3)
    assert figures["tuned_accuracy_greedy"] == pytest.approx(2 / 3)
    assert figures["tuned_minus_base_accuracy"] == pytest.approx(1 / 3)
    assert figures["tuned_minus_base_accuracy_greedy"] == pytest.approx(0.0)
    kept = [0, 1, 3]
    [expected] = bootstrap_mean_intervals([[base.sampled[i] for i in kept]], seed=0)
    assert figures["base_accuracy_ci"] == expected and figures["tuned_accuracy_ci"] == [1.0, 1.0]
    for figure in ACCURACY_FIGURES:
        low, high = figures[f"{figure}_ci"]
        assert low <= figures[figure] <= high

    nothing = RuleRewards([nan, nan], [nan, nan])
    empty = accuracy_figures(nothing, nothing, seed=0)
    assert empty["accuracy_rows_scored"] == 0 and all(empty[key] is None for key in ACCURACY_KEYS[:-1])
    assert accuracy_figures(None, None, seed=0) == dict.fromkeys(ACCURACY_KEYS)


# ---------------------------------------------------------------- full runs on tiny models


def test_accuracy_equals_the_rule_on_the_written_predictions(tmp_path, models, data):
    result = _evaluate(tmp_path, models, data, reward_function=data["rule"])
    calls = list(sys.modules[RULE_MODULE].CALLS)  # before _rule_rewards loads the file again
    policy = result.evaluation["policy"]
    predictions = tmp_path / "predictions"
    responses = {
        "base_accuracy": _predictions(predictions / "base_predictions.jsonl"),
        "tuned_accuracy": _predictions(predictions / "tuned_predictions.jsonl"),
        "base_accuracy_greedy": _predictions(predictions / "base_greedy_predictions.jsonl"),
        "tuned_accuracy_greedy": _predictions(predictions / "tuned_greedy_predictions.jsonl"),
    }
    rewards = {name: _rule_rewards(data["rule"], texts) for name, texts in responses.items()}
    assert all(r[-1] is None for r in rewards.values())  # the prompt without ground truth
    scored = [i for i in range(len(EVAL_PROMPTS)) if all(r[i] is not None for r in rewards.values())]
    assert policy["accuracy_rows_scored"] == len(scored) == len(EVAL_PROMPTS) - 1
    vectors = {name: [r[i] for i in scored] for name, r in rewards.items()}
    for suffix in ("", "_greedy"):
        vectors[f"tuned_minus_base_accuracy{suffix}"] = [
            t - b for t, b in zip(vectors[f"tuned_accuracy{suffix}"], vectors[f"base_accuracy{suffix}"])
        ]
    for name, values in vectors.items():
        assert policy[name] == pytest.approx(sum(values) / len(values)), name
        [interval] = bootstrap_mean_intervals([values], SEED)
        assert policy[f"{name}_ci"] == pytest.approx(interval), name
        assert policy[f"{name}_ci"][0] <= policy[name] <= policy[f"{name}_ci"][1]
    # greedy decoding is its own pass, and deterministic: it differs from the samples
    assert responses["base_accuracy_greedy"] != responses["base_accuracy"]
    assert responses["tuned_accuracy_greedy"] != responses["tuned_accuracy"]

    # called as TRL calls it: plain-text prompts (no chat template), the row's columns, token ids
    assert len(calls) == 4 and all(call["ground_truth"] == TRUTHS for call in calls)
    assert all(call["prompts"] == EVAL_PROMPTS for call in calls)
    assert {"trainer_state", "log_extra", "log_metric"} <= set(calls[0]["keywords"])
    assert all(0 < len(ids) <= 6 for call in calls for ids in call["completion_ids"])

    # the reward model is still measured
    assert policy["win_rate"] is not None and result.evaluation["reward_model"]["eval_accuracy"] is not None

    # flat metrics, summary, reports
    assert result.metrics["base_accuracy"] == pytest.approx(policy["base_accuracy"])
    assert result.metrics["tuned_accuracy_greedy_ci_high"] == policy["tuned_accuracy_greedy_ci"][1]
    assert result.metrics["accuracy_rows_scored"] == len(scored)
    summary = build_summary(result.evaluation, 1, 2, "rm", "policy", "report")
    for key in ACCURACY_KEYS:
        assert summary["policy"][key] == policy[key]
    markdown, html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    rule_name = data["rule"]
    for figure in ACCURACY_FIGURES:
        cell = format_estimate(policy[figure], policy[f"{figure}_ci"])
        assert f"| {cell} |" in markdown and f'<td class="num">{cell}</td>' in html, figure
    assert "sampled, temperature 1" in markdown and "greedy)" in markdown
    assert f"{len(scored)} of {len(EVAL_PROMPTS)}" in markdown
    assert "Base rule reward" in markdown and "Tuned rule reward" in html and rule_name in html
    assert ACCURACY_GUIDE in markdown and escape(ACCURACY_GUIDE) in html
    assert NO_REWARD_MODEL not in markdown


def test_without_a_reward_model_its_figures_are_null_and_the_reports_say_so(tmp_path, models, data):
    """Through the KFP wrappers, with neither reward model, preference data nor reward-model logs."""
    from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

    from components.evaluate.component import evaluate
    from components.summarize_run.component import summarize_run

    out = tmp_path / "out"
    artifacts = {
        "metrics": Metrics(uri=str(out / "metrics")),
        "report": HTML(uri=str(out / "report.html")),
        "report_markdown": Markdown(uri=str(out / "report.md")),
        "predictions": Dataset(uri=str(out / "predictions")),
        "evaluation": Artifact(uri=str(out / "evaluation.json")),
    }
    evaluate(
        base_model=Model(uri=models["base"]), policy=Model(uri=models["tuned"]),
        prompt_data=Dataset(uri=str(data["prompts"].parent)), policy_logs=Artifact(uri=str(tmp_path / "no-logs")),
        prompt_sequence_length=24, target_sequence_length=6, sampling_temperature=0.7, max_eval_prompts=50,
        gold_scorer="", use_chat_template="auto", num_generations=4, seed=SEED, rollout_engine="transformers",
        vllm_gpu_memory_utilization=0.3, code_version="test",
        reward_function=data["rule"], **artifacts,
    )
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["reward_model"] == {"eval_accuracy": None, "eval_accuracy_ci": None, "eval_pairs": None}
    policy = evaluation["policy"]
    for figure in ("base_mean_reward", "tuned_mean_reward", "tuned_minus_base_reward", "win_rate"):
        assert policy[figure] is None and policy[f"{figure}_ci"] is None
    assert policy["base_accuracy"] is not None and policy["accuracy_rows_scored"] == len(EVAL_PROMPTS) - 1
    assert math.isfinite(policy["kl_to_base"])

    metrics = json.loads((out / "metrics").read_text())
    assert "win_rate" not in metrics and "reward_model_eval_accuracy" not in metrics
    assert "reward_model_eval_mean_margin" not in metrics and metrics["tuned_accuracy"] == policy["tuned_accuracy"]

    markdown, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    for report in (markdown, html):
        assert report.count(NO_REWARD_MODEL) >= 6  # accuracy, margin, win rate, difference, base and tuned reward
        assert "Base reward" not in report and "Base rule reward" in report
        assert "sampled, temperature 0.7" in report
    assert "Green marks the response the reward function rewards more." in html
    assert "| Reward model | none |" in markdown

    summary = Artifact(uri=str(out / "summary.json"))
    summarize_run(
        evaluation=artifacts["evaluation"], policy=Model(uri=models["tuned"]), report=artifacts["report"],
        reward_model_train_steps=0, reinforcement_learning_train_steps=2, preference_tuning_train_steps=0, algorithm="ppo",
        code_version="test", summary=summary,
    )
    written = json.loads((out / "summary.json").read_text())
    assert written["paths"]["reward_model"] is None
    assert written["reward_model"] == evaluation["reward_model"] and written["policy"] == policy


def test_the_reward_function_adds_accuracy_and_changes_nothing_else(tmp_path, models, data, monkeypatch):
    """Without a reward function: accuracy keys null, no greedy pass; with one, every other output is the same."""
    from components.evaluate import evaluation as evaluation_module

    passes = []
    original = evaluation_module.sample_policy

    def counting(model, formatter, prompts, config, name, engine=None):
        passes.append((name, config.temperature))
        return original(model, formatter, prompts, config, name, engine)

    monkeypatch.setattr(evaluation_module, "sample_policy", counting)
    plain = _evaluate(tmp_path / "plain", models, data)
    assert passes == [("tuned", 1.0), ("base", 1.0)]
    assert all(plain.evaluation["policy"][key] is None for key in ACCURACY_KEYS)
    assert not any(key.startswith(("base_accuracy", "tuned_accuracy", "accuracy")) for key in plain.metrics)
    assert not (tmp_path / "plain" / "predictions" / "base_greedy_predictions.jsonl").exists()
    plain_markdown = (tmp_path / "plain" / "report.md").read_text()
    assert "rule reward" not in plain_markdown and "Accuracy" not in plain_markdown
    assert ACCURACY_GUIDE not in plain_markdown and NO_REWARD_MODEL not in plain_markdown

    passes.clear()
    ruled = _evaluate(tmp_path / "ruled", models, data, reward_function=data["rule"])
    assert passes == [("tuned", 1.0), ("tuned (greedy)", 0.0), ("base", 1.0), ("base (greedy)", 0.0)]
    without_accuracy = {k: v for k, v in ruled.evaluation["policy"].items() if k not in ACCURACY_KEYS}
    assert without_accuracy == {k: v for k, v in plain.evaluation["policy"].items() if k not in ACCURACY_KEYS}
    assert ruled.evaluation["reward_model"] == plain.evaluation["reward_model"]
    assert {k: v for k, v in ruled.metrics.items() if k in plain.metrics} == plain.metrics
    for name in ("base_predictions.jsonl", "tuned_predictions.jsonl"):
        assert (tmp_path / "ruled" / "predictions" / name).read_text() == (
            tmp_path / "plain" / "predictions" / name).read_text()

    # at temperature 0 the samples are the greedy responses: no extra pass, equal figures
    passes.clear()
    greedy = _evaluate(tmp_path / "greedy", models, data, reward_function=data["rule"], temperature=0.0)
    assert passes == [("tuned", 0.0), ("base", 0.0)]
    policy = greedy.evaluation["policy"]
    assert policy["base_accuracy"] == policy["base_accuracy_greedy"]
    assert policy["tuned_accuracy_ci"] == policy["tuned_accuracy_greedy_ci"]


def test_a_policy_with_a_chat_template_gets_conversational_prompts_and_completions(tmp_path, models, data):
    from transformers import AutoTokenizer

    chat = {}
    for name in ("base", "tuned"):
        chat[name] = str(tmp_path / f"{name}-chat")
        shutil.copytree(models[name], chat[name])
        tokenizer = AutoTokenizer.from_pretrained(chat[name])
        tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
        tokenizer.save_pretrained(chat[name])
    result = run_evaluation(
        _config(reward_function=data["rule"]), base_source=chat["base"], tuned_source=chat["tuned"],
        reward_source=None, eval_pairs_path=None, eval_prompts_path=data["prompts"], reward_logs_dir=None,
        policy_logs_dir=None, outputs=_outputs(tmp_path / "out"), placement=CPU,
    )
    calls = sys.modules[RULE_MODULE].CALLS
    assert len(calls) == 4
    for call in calls:
        assert call["prompts"] == [[{"role": "user", "content": p}] for p in EVAL_PROMPTS]
        assert all(c[0]["role"] == "assistant" and isinstance(c[0]["content"], str) for c in call["completions"])
    assert result.evaluation["policy"]["accuracy_rows_scored"] == len(EVAL_PROMPTS) - 1


def test_reward_function_problems_fail_before_any_model_is_loaded(tmp_path, data):
    arguments = dict(base_source="/nonexistent", tuned_source="/nonexistent", reward_source=None,
                     eval_pairs_path=None, eval_prompts_path=data["prompts"], reward_logs_dir=None,
                     policy_logs_dir=None, outputs=_outputs(tmp_path / "out"))
    with pytest.raises(UserInputError, match="reward_function 'no-such-builtin'"):
        run_evaluation(_config(reward_function="no-such-builtin"), **arguments)
    no_truth = _write_jsonl(tmp_path / "plain" / "eval.jsonl", [{"prompt": p} for p in PROMPTS])
    with pytest.raises(UserInputError, match="needs the column 'ground_truth'.*held-out prompts"):
        run_evaluation(_config(reward_function="boxed-answer"), **{**arguments, "eval_prompts_path": no_truth})


def test_evaluate_component_takes_the_reward_model_as_optional():
    from kfp import dsl

    from components.evaluate.component import evaluate
    from components.summarize_run.component import summarize_run

    spec = dsl.component(evaluate, base_image="python:3.11", install_kfp_package=False).component_spec
    for name in ("reward_model", "preference_data", "reward_model_logs", "reward_function"):
        assert spec.inputs[name].optional, name
    assert spec.inputs["reward_function"].default == ""
    assert not spec.inputs["policy"].optional
    summary_spec = dsl.component(summarize_run, base_image="python:3.11", install_kfp_package=False).component_spec
    assert summary_spec.inputs["reward_model"].optional
