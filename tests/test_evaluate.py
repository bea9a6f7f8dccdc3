"""Evaluation stage: metric functions, data reading, curves, reports and full runs on tiny models."""

import json
import math
import re
from html import escape
from pathlib import Path

import pytest
import torch

from components.common.errors import UserInputError
from components.common.data.transcripts import Prompt
from components.common.generation import generate_responses
from components.common.models import Placement
from components.common.reward_scoring import RewardScorer
from components.evaluate.accuracy import ACCURACY_KEYS
from components.common.implicit_reward import IMPLICIT_REWARD_KEYS
from components.evaluate.config import EvaluationConfig
from components.evaluate.curves import read_curves
from components.common.canonical_data import read_preference_pairs
from components.evaluate.eval_data import read_eval_prompts
from components.evaluate.evaluation import EvaluationOutputs, run_evaluation
from components.evaluate.gold_scoring import resolve_gold_scorer
from components.common.metrics import (
    correct_orderings,
    mean_margin,
    pairwise_accuracy,
    summed_log_ratios,
    win_rate,
    win_shares,
)
from components.common.log_probs import response_log_probs
from components.common.models import load_causal_lm
from components.evaluate.report_content import format_estimate
from components.evaluate.report_markdown import markdown_cell
from components.common.uncertainty import bootstrap_mean_intervals

CPU = Placement(torch.device("cpu"), torch.float32)
CORPUS = [
    "summarize the post about my cat and the dog in the park",
    "my landlord kept the deposit and i do not know what to do",
    "tl dr cat sat on the mat while the dog ran",
    "short answer good long answer bad the end",
]
HOSTILE_PROMPT = 'my cat <script>alert("x")</script> & the dog | [summary]:'
EVAL_PROMPTS = [
    "summarize the post about my cat",
    HOSTILE_PROMPT,
    "my landlord kept the deposit",
    "tl dr the dog ran in the park",
    "short answer",
    "the cat sat on the mat",
    "i do not know what to do",
]


# ---------------------------------------------------------------- tiny models, built offline


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel(unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    word_level.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def _llama_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
        initializer_range=0.5,  # peaked next-token distributions: differently seeded policies really differ
    )


def _save_policy(directory: Path, tokenizer, seed: int) -> str:
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    LlamaForCausalLM(_llama_config(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    from transformers import LlamaForSequenceClassification

    root = tmp_path_factory.mktemp("models")
    tokenizer = _tokenizer()
    torch.manual_seed(2)
    config = _llama_config(tokenizer)
    config.num_labels = 1
    reward = LlamaForSequenceClassification(config)
    torch.nn.init.normal_(reward.score.weight, std=1.0)  # spread the scores so that ties do not happen
    reward.save_pretrained(root / "reward")
    tokenizer.save_pretrained(root / "reward")
    return {
        "base": _save_policy(root / "base", tokenizer, seed=0),
        "tuned": _save_policy(root / "tuned", tokenizer, seed=1),
        "reward": str(root / "reward"),
    }


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PAIRS = [
    {"prompt": "summarize the post about my cat [summary]: ", "chosen": "cat sat on the mat", "rejected": "dog dog"},
    {"prompt": "my landlord kept the deposit ", "chosen": "i do not know", "rejected": "the end"},
    {"prompt": "tl dr ", "chosen": "short answer good", "rejected": "long answer bad the end"},
    {"prompt": "the dog ran ", "chosen": "in the park", "rejected": "my cat"},
    {"prompt": "what to do ", "chosen": "good answer", "rejected": "bad answer"},
]


def _write_logs(directory: Path, scalars: dict[str, list[float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(directory))
    for tag, values in scalars.items():
        for step, value in enumerate(values, start=1):
            writer.add_scalar(tag, value, step)
    writer.close()


@pytest.fixture
def data(tmp_path) -> dict[str, Path]:
    reward_logs, policy_logs = tmp_path / "reward_logs", tmp_path / "policy_logs"
    _write_logs(reward_logs, {"rank_loss": [0.69, 0.6, 0.5, 0.45], "eval_accuracy": [0.55, 0.61]})
    _write_logs(policy_logs, {
        "reward": [0.1 * i for i in range(30)], "kl_loss": [0.01 * i for i in range(30)],
        "rl_loss": [1.0 / (i + 1) for i in range(30)], "learning_rate": [1e-5] * 30,
    })
    return {
        "pairs": _write_jsonl(tmp_path / "preference" / "eval.jsonl", PAIRS),
        "prompts": _write_jsonl(tmp_path / "prompts" / "eval.jsonl", [{"prompt": p} for p in EVAL_PROMPTS]),
        "reward_logs": reward_logs,
        "policy_logs": policy_logs,
    }


def _outputs(root: Path) -> EvaluationOutputs:
    return EvaluationOutputs(root / "report.html", root / "report.md", root / "predictions", root / "evaluation.json")


def _config(**overrides) -> EvaluationConfig:
    settings = dict(max_new_tokens=6, max_prompt_tokens=24, temperature=1.0, max_eval_prompts=50,
                    seed=3, generation_batch_size=4, reward_batch_size=3)
    settings.update(overrides)
    return EvaluationConfig(**settings)


INTERVAL_FIGURES = ("base_mean_reward", "tuned_mean_reward", "tuned_minus_base_reward", "win_rate",
                    "base_gold_score", "tuned_gold_score", "tuned_minus_base_gold_score")
INTERVAL_KEYS = tuple(f"{figure}_ci" for figure in INTERVAL_FIGURES)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- pure metrics


def test_win_rate_counts_ties_half():
    assert win_rate([1.0, 2.0, 3.0, 5.0], [0.0, 2.0, 4.0, 5.0]) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert win_rate(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])) == 1.0
    with pytest.raises(ValueError):
        win_rate([1.0], [1.0, 2.0])


def test_pairwise_accuracy_needs_strictly_higher_chosen_reward():
    assert pairwise_accuracy([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]) == pytest.approx(1 / 3)
    assert mean_margin([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]) == pytest.approx(0.0)
    assert mean_margin([3.0, 1.0], [1.0, 0.0]) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        pairwise_accuracy([], [])


def test_per_item_wins_and_orderings_average_to_the_figures():
    assert win_shares([1.0, 2.0, 3.0, 5.0], [0.0, 2.0, 4.0, 5.0]).tolist() == [1.0, 0.5, 0.0, 0.5]
    assert correct_orderings([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]).tolist() == [1.0, 0.0, 0.0]


# ---------------------------------------------------------------- bootstrap intervals


def _noisy_rewards(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.3


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_prompts():
    widths = []
    for count in (20, 200, 2000):
        rewards = _noisy_rewards(count)
        [(low, high)] = bootstrap_mean_intervals([rewards], seed=0)
        assert low < rewards.mean().item() < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    # about 1.96 standard errors each side for a mean of unit-variance values
    assert widths[2] == pytest.approx(2 * 1.96 / math.sqrt(2000), rel=0.15)


def test_bootstrap_interval_of_a_constant_is_that_constant():
    [all_wins] = bootstrap_mean_intervals([win_shares([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])], seed=0)
    assert all_wins == [1.0, 1.0]
    [all_ties] = bootstrap_mean_intervals([win_shares([1.0, 2.0], [1.0, 2.0])], seed=0)
    assert all_ties == [0.5, 0.5]


def test_bootstrap_is_deterministic_for_a_seed():
    rewards = _noisy_rewards(50)
    assert bootstrap_mean_intervals([rewards], seed=4) == bootstrap_mean_intervals([rewards], seed=4)
    assert bootstrap_mean_intervals([rewards], seed=4) != bootstrap_mean_intervals([rewards], seed=5)


def test_bootstrap_resamples_the_same_prompts_for_every_figure():
    """Paired figures: a prompt's base and tuned rewards are drawn together, and more figures change no draw."""
    base = _noisy_rewards(40, seed=1)
    base_ci, shifted_ci = bootstrap_mean_intervals([base, base + 0.5], seed=0)
    assert shifted_ci == pytest.approx([base_ci[0] + 0.5, base_ci[1] + 0.5], abs=1e-12)
    assert bootstrap_mean_intervals([base], seed=0) == [base_ci]
    with pytest.raises(ValueError):
        bootstrap_mean_intervals([[]], seed=0)


def test_estimates_are_shown_with_their_interval():
    assert format_estimate(0.8125, [0.76, 0.86]) == "0.8125 [0.76, 0.86]"
    assert format_estimate(0.8125, None) == "0.8125"
    assert format_estimate(None, None) == "n/a"


def test_log_ratios_sum_only_masked_in_response_tokens():
    tuned = torch.tensor([[-1.0, -2.0, -99.0], [-0.5, -0.5, -0.5]])
    base = torch.tensor([[-1.5, -1.0, 7.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert summed_log_ratios(tuned, base, mask).tolist() == pytest.approx([0.5 - 1.0, 1.5])
    with pytest.raises(ValueError):
        summed_log_ratios(tuned, base, mask[:, :2])


def test_response_token_counts_exclude_the_closing_eos_and_padding():
    from components.common.generation import GeneratedBatch
    from components.evaluate.policy_samples import PolicySamples

    eos = (1, 9)  # pad == eos (1), as for tokenizers without a pad token, and a second end token
    ids = torch.tensor([[5, 6, 1, 1], [5, 6, 7, 8], [1, 1, 1, 1], [5, 9, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    ended = torch.tensor([True, False, True, True])
    prompts = torch.ones(4, 2, dtype=torch.long)
    samples = PolicySamples([GeneratedBatch(prompts, prompts, ids, mask, ["a", "b", "", "c"], ended, eos)])
    assert samples.token_counts == [2, 4, 0, 1]
    assert samples.truncated == [False, True, False, False]


def test_policy_log_probs_match_the_sampling_distribution(models):
    """Log-probabilities re-read in one forward pass equal those generate() sampled from."""
    model, formatter = load_causal_lm(models["tuned"], CPU, "auto")
    tokenizer = formatter.tokenizer
    torch.manual_seed(0)
    batch = generate_responses(model, tokenizer, EVAL_PROMPTS[:4], max_new_tokens=5, max_prompt_tokens=24,
                               temperature=0.7)
    from transformers import GenerationConfig

    torch.manual_seed(0)
    output = model.generate(
        input_ids=batch.prompt_ids, attention_mask=batch.prompt_mask, output_scores=True,
        return_dict_in_generate=True,
        generation_config=GenerationConfig(max_new_tokens=5, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                                           pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id),
    )
    steps = len(output.scores)
    sampled = output.sequences[:, batch.prompt_ids.shape[1]:]
    expected = torch.stack(output.scores, 1).log_softmax(-1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
    expected = expected * batch.response_mask[:, :steps]
    assert torch.allclose(response_log_probs(model, batch, 0.7)[:, :steps], expected, atol=1e-5)
    # at another temperature the log-probabilities differ: the temperature is applied
    assert not torch.allclose(response_log_probs(model, batch, 1.0)[:, :steps], expected, atol=1e-3)


# ---------------------------------------------------------------- inputs, gold scorers, curves


def test_eval_prompts_subset_is_seeded_and_keeps_file_order(tmp_path):
    path = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"p{i}"} for i in range(20)])
    first = read_eval_prompts(path, max_prompts=5, seed=1)
    assert first == read_eval_prompts(path, max_prompts=5, seed=1)
    assert first != read_eval_prompts(path, max_prompts=5, seed=2)
    assert len(first) == 5 and first == sorted(first, key=lambda p: int(p.text[1:]))
    assert len(read_eval_prompts(path, max_prompts=50, seed=1)) == 20


def test_bad_eval_rows_name_the_file_row_and_field(tmp_path):
    path = tmp_path / "eval.jsonl"
    path.write_text(json.dumps(PAIRS[0]) + "\n\n" + json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(UserInputError, match=r"eval\.jsonl row 3: field 'rejected'"):
        read_preference_pairs(path)
    path.write_text("{not json\n")
    with pytest.raises(UserInputError, match="row 1: not valid JSON"):
        read_preference_pairs(path)
    path.write_text("")
    with pytest.raises(UserInputError, match="no rows"):
        read_eval_prompts(path, 5, 0)
    with pytest.raises(UserInputError, match="file not found"):
        read_eval_prompts(tmp_path / "missing.jsonl", 5, 0)


def test_gold_scorer_lookup():
    def scorer(prompt, response):
        return 1.0

    assert resolve_gold_scorer("", {"mine": scorer}) is None
    assert resolve_gold_scorer("mine", {"mine": scorer}) is scorer
    with pytest.raises(UserInputError, match=r"unknown name 'other'.*'mine'"):
        resolve_gold_scorer("other", {"mine": scorer})


def test_unknown_gold_scorer_fails_before_any_model_is_loaded(tmp_path, data):
    with pytest.raises(UserInputError, match="gold_scorer"):
        run_evaluation(
            _config(gold_scorer="no-such-scorer"), base_source="/nonexistent", tuned_source="/nonexistent",
            reward_source="/nonexistent", eval_pairs_path=data["pairs"], eval_prompts_path=data["prompts"],
            reward_logs_dir=None, policy_logs_dir=None, outputs=_outputs(tmp_path / "out"), gold_scorers={},
        )


def test_curves_are_read_from_event_logs_in_step_order(tmp_path):
    _write_logs(tmp_path / "logs", {"rank_loss": [0.7, 0.5, 0.4]})
    _write_logs(tmp_path / "logs" / "eval", {"accuracy": [0.6, 0.65]})
    curves = {c.tag: c for c in read_curves(tmp_path / "logs", "reward model")}
    assert set(curves) == {"rank_loss", "eval/accuracy"}
    assert curves["rank_loss"].steps == [1, 2, 3]
    assert curves["rank_loss"].values == pytest.approx([0.7, 0.5, 0.4])
    assert curves["eval/accuracy"].stage == "reward model"
    assert read_curves(tmp_path / "absent", "policy") == [] and read_curves(None, "policy") == []


def test_markdown_cells_cannot_break_the_table_or_inject_html():
    cell = markdown_cell('a | b <img src=x> *c*\nnext')
    assert "<img" not in cell and "&lt;img" in cell
    assert "\n" not in cell and re.search(r"(?<!\\)\|", cell) is None and r"\| b" in cell
    assert markdown_cell("x" * 500).endswith("…") and len(markdown_cell("x" * 500)) < 320
    kept = markdown_cell("system " * 100 + "the question", keep_end=True)  # a rendered prompt keeps its end
    assert kept.startswith("…") and kept.endswith("the question") and len(kept) < 320


# ---------------------------------------------------------------- full runs


def test_identical_policies_have_zero_kl_and_even_win_rate(tmp_path, models, data):
    """The same model as base and tuned: the same seeded samples, rewards tie, KL is exactly 0."""
    def words(prompt: str, response: str) -> float:
        return float(len(response.split()))

    result = run_evaluation(
        _config(gold_scorer="words"), base_source=models["base"], tuned_source=models["base"],
        reward_source=models["reward"], eval_pairs_path=data["pairs"], eval_prompts_path=data["prompts"],
        reward_logs_dir=None, policy_logs_dir=None,
        outputs=_outputs(tmp_path), gold_scorers={"words": words}, placement=CPU,
    )
    policy = result.evaluation["policy"]
    assert policy["kl_to_base"] == 0.0
    assert policy["win_rate"] == 0.5
    assert policy["base_mean_reward"] == policy["tuned_mean_reward"]
    base_rows = _read_jsonl(tmp_path / "predictions" / "base_predictions.jsonl")
    assert base_rows == _read_jsonl(tmp_path / "predictions" / "tuned_predictions.jsonl")
    expected_gold = sum(len(r["prediction"].split()) for r in base_rows) / len(base_rows)
    assert policy["base_gold_score"] == pytest.approx(expected_gold)
    assert policy["tuned_gold_score"] == pytest.approx(expected_gold)
    # the same prompts resampled for both policies: paired intervals collapse, the others coincide
    assert policy["win_rate_ci"] == [0.5, 0.5]
    assert policy["tuned_minus_base_reward_ci"] == [0.0, 0.0] == policy["tuned_minus_base_gold_score_ci"]
    assert policy["base_mean_reward_ci"] == policy["tuned_mean_reward_ci"]
    low, high = policy["base_gold_score_ci"]
    assert low <= policy["base_gold_score"] <= high and policy["tuned_gold_score_ci"] == [low, high]
    markdown = (tmp_path / "report.md").read_text()
    assert "Mean gold score (words)" in markdown and "Base gold" in markdown
    assert f"| {format_estimate(policy['base_gold_score'], [low, high])} |" in markdown
    assert "| 0.5 [0.5, 0.5] |" in markdown
    assert "No training logs" in markdown and "No training logs" in (tmp_path / "report.html").read_text()
    tuning = result.evaluation["tuning"]  # the same weights: the report says tuning changed nothing
    assert tuning["tuned_equals_base"] and tuning["policy_steps_logged"] is None
    assert "No learning: the tuned policy's weights equal the base model's" in markdown
    assert result.metrics["tuned_equals_base"] == 1.0


def test_component_runs_the_whole_evaluation(tmp_path, models, data):
    """Through the KFP wrapper: outputs in place, numbers consistent with an independent scoring."""
    from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

    from components.common.models import write_model_reference
    from components.evaluate.component import evaluate
    from components.summarize_run.component import summarize_run

    write_model_reference(tmp_path / "base_ref", models["base"], "base model by reference")
    out = tmp_path / "out"
    artifacts = {
        "metrics": Metrics(uri=str(out / "metrics")),
        "report": HTML(uri=str(out / "report.html")),
        "report_markdown": Markdown(uri=str(out / "report.md")),
        "predictions": Dataset(uri=str(out / "predictions")),
        "evaluation": Artifact(uri=str(out / "evaluation.json")),
    }
    evaluate(
        base_model=Model(uri=str(tmp_path / "base_ref")), policy=Model(uri=models["tuned"]),
        reward_model=Model(uri=models["reward"]), preference_data=Dataset(uri=str(data["pairs"].parent)),
        prompt_data=Dataset(uri=str(data["prompts"].parent)),
        reward_model_logs=Artifact(uri=str(data["reward_logs"])), policy_logs=Artifact(uri=str(data["policy_logs"])),
        prompt_sequence_length=24, target_sequence_length=6, sampling_temperature=1.0, max_eval_prompts=5,
        gold_scorer="", use_chat_template="auto", num_generations=4, seed=0, rollout_engine="transformers",
        vllm_gpu_memory_utilization=0.3, code_version="test", **artifacts,
    )

    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation) == {"reward_model", "policy", "tuning"}
    assert set(evaluation["reward_model"]) == {"eval_accuracy", "eval_accuracy_ci", "eval_pairs"}
    assert set(evaluation["policy"]) == {
        "base_mean_reward", "tuned_mean_reward", "win_rate", "kl_to_base", "base_gold_score", "tuned_gold_score",
        "base_mean_response_tokens", "tuned_mean_response_tokens", "eval_prompts", "tuned_minus_base_reward",
        "tuned_minus_base_gold_score", "base_truncated_fraction", "tuned_truncated_fraction", *INTERVAL_KEYS,
        *ACCURACY_KEYS, *IMPLICIT_REWARD_KEYS,
    }
    policy = evaluation["policy"]
    assert all(policy[key] is None for key in ACCURACY_KEYS)  # no reward function: no accuracy
    assert policy["implicit_reward_pairs"] == len(PAIRS) and 0.0 <= policy["implicit_reward_accuracy"] <= 1.0
    assert evaluation["reward_model"]["eval_pairs"] == len(PAIRS)
    assert policy["eval_prompts"] == 5
    assert policy["base_gold_score"] is None and policy["tuned_gold_score"] is None
    assert policy["tuned_minus_base_gold_score"] is None
    assert policy["base_gold_score_ci"] is None and policy["tuned_gold_score_ci"] is None
    assert policy["tuned_minus_base_gold_score_ci"] is None
    assert policy["tuned_minus_base_reward"] == pytest.approx(policy["tuned_mean_reward"] - policy["base_mean_reward"])
    reward_figures = [("policy", figure) for figure in INTERVAL_FIGURES if "gold" not in figure]
    for section, figure in [("reward_model", "eval_accuracy"), *reward_figures]:
        low, high = evaluation[section][f"{figure}_ci"]
        assert low <= evaluation[section][figure] <= high, figure
    assert 0.0 <= policy["win_rate"] <= 1.0
    assert math.isfinite(policy["kl_to_base"]) and policy["kl_to_base"] != 0.0
    for key in ("base_mean_response_tokens", "tuned_mean_response_tokens"):
        assert 0.0 <= policy[key] <= 6
    for key in ("base_truncated_fraction", "tuned_truncated_fraction"):
        assert 0.0 <= policy[key] <= 1.0

    # predictions: Vertex bulk-inference rows, one per evaluated prompt, in the same order for both
    base_rows = _read_jsonl(out / "predictions" / "base_predictions.jsonl")
    tuned_rows = _read_jsonl(out / "predictions" / "tuned_predictions.jsonl")
    assert len(base_rows) == len(tuned_rows) == 5
    for row in base_rows + tuned_rows:
        assert set(row) == {"inputs", "prediction"} and isinstance(row["prediction"], str)
        assert row["inputs"]["targets_pretokenized"] == "" and row["inputs"]["inputs_pretokenized"] in EVAL_PROMPTS
    prompts = [r["inputs"]["inputs_pretokenized"] for r in base_rows]
    assert prompts == [r["inputs"]["inputs_pretokenized"] for r in tuned_rows]
    assert base_rows != tuned_rows

    # the reward model, applied here independently, gives the same rewards, win rate and accuracy
    scorer = RewardScorer(models["reward"], CPU)
    base_rewards = scorer.score([Prompt(p) for p in prompts], [r["prediction"] for r in base_rows]).tolist()
    tuned_rewards = scorer.score([Prompt(p) for p in prompts], [r["prediction"] for r in tuned_rows]).tolist()
    wins = sum(1.0 if t > b else 0.5 if t == b else 0.0 for t, b in zip(tuned_rewards, base_rewards))
    assert policy["win_rate"] == pytest.approx(wins / 5)
    assert policy["base_mean_reward"] == pytest.approx(sum(base_rewards) / 5, abs=1e-5)
    assert policy["tuned_mean_reward"] == pytest.approx(sum(tuned_rewards) / 5, abs=1e-5)
    chosen = scorer.score([Prompt(p["prompt"]) for p in PAIRS], [p["chosen"] for p in PAIRS])
    rejected = scorer.score([Prompt(p["prompt"]) for p in PAIRS], [p["rejected"] for p in PAIRS])
    assert evaluation["reward_model"]["eval_accuracy"] == pytest.approx((chosen > rejected).float().mean().item())

    # metrics on the KFP artifact and in its file
    metrics = json.loads((out / "metrics").read_text())
    assert metrics["win_rate"] == pytest.approx(policy["win_rate"])
    assert artifacts["metrics"].metadata["reward_model_eval_accuracy"] == evaluation["reward_model"]["eval_accuracy"]
    assert "base_gold_score" not in metrics and "base_gold_score_ci_low" not in metrics
    assert [metrics["win_rate_ci_low"], metrics["win_rate_ci_high"]] == policy["win_rate_ci"]
    assert metrics["reward_model_eval_accuracy_ci_high"] == evaluation["reward_model"]["eval_accuracy_ci"][1]

    # curves: one PNG per scalar tag, embedded in the HTML
    pngs = sorted(p.name for p in (out / "predictions" / "curves").glob("*.png"))
    assert len(pngs) == 6 and "policy_kl_loss.png" in pngs and "reward_model_rank_loss.png" in pngs
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 6
    assert html.count("<tr") >= 1 + 5  # header + one row per prompt in the side-by-side table
    for row in base_rows:
        assert escape(row["inputs"]["inputs_pretokenized"]) in html
    assert HOSTILE_PROMPT in prompts  # seed 0 keeps it among the 5 of 7 prompts
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html

    markdown = (out / "report.md").read_text()
    win_rate_cell = format_estimate(policy["win_rate"], policy["win_rate_ci"])
    accuracy_cell = format_estimate(evaluation["reward_model"]["eval_accuracy"],
                                    evaluation["reward_model"]["eval_accuracy_ci"])
    assert "[" in win_rate_cell and f"| {win_rate_cell} |" in markdown and f"| {accuracy_cell} |" in markdown
    assert f"<td class=\"num\">{win_rate_cell}</td>" in html
    assert "95% intervals" in markdown and "95% intervals" in html
    assert "rank\\_loss" in markdown and "| 0.45 |" in markdown  # final value of the rank_loss curve
    assert "How to read this" in markdown and "<script>" not in markdown
    # the plots are links to the PNGs, relative to the report's folder
    links = re.findall(r"\]\(([^)]+\.png)\)", markdown)
    assert sorted(link.removeprefix("predictions/curves/") for link in links) == pngs
    assert all((out / link).is_file() for link in links)

    # summary.json carries every figure and interval of evaluation.json under the same names
    summary = Artifact(uri=str(out / "summary.json"))
    summarize_run(
        evaluation=artifacts["evaluation"], reward_model=Model(uri=models["reward"]), policy=Model(uri=models["tuned"]),
        report=artifacts["report"], reward_model_train_steps=3, reinforcement_learning_train_steps=2,
        preference_tuning_train_steps=0, algorithm="ppo", code_version="test", summary=summary,
    )
    written = json.loads((out / "summary.json").read_text())
    assert written["reward_model"] == evaluation["reward_model"] and written["policy"] == policy
    assert written["policy"]["win_rate_ci"] == policy["win_rate_ci"] and written["policy"]["base_gold_score_ci"] is None


def test_evaluate_is_a_valid_kfp_component():
    from kfp import dsl

    from components.evaluate.component import evaluate

    component = dsl.component(evaluate, base_image="python:3.11", install_kfp_package=False)
    spec = component.component_spec
    assert set(spec.inputs) >= {"base_model", "policy", "reward_model", "gold_scorer", "code_version", "seed"}
    assert set(spec.outputs) == {"metrics", "report", "report_markdown", "predictions", "evaluation"}


def test_report_flags_reward_hacking_and_suspicious_accuracy():
    from components.evaluate.report_content import ReportContent
    from components.evaluate.report_html import render_html

    evaluation = {
        "reward_model": {"eval_accuracy": 0.99, "eval_pairs": 100},
        "policy": {
            "base_mean_reward": 0.1, "tuned_mean_reward": 3.0, "win_rate": 0.9, "kl_to_base": 45.0,
            "base_gold_score": 0.6, "tuned_gold_score": 0.4, "base_mean_response_tokens": 30.0,
            "tuned_mean_response_tokens": 64.0, "eval_prompts": 10, "tuned_minus_base_reward": 2.9,
            "tuned_minus_base_gold_score": -0.2, "base_truncated_fraction": 0.1, "tuned_truncated_fraction": 0.9,
        },
    }
    evaluation["reward_model"]["eval_accuracy_ci"] = [0.97, 1.0]
    evaluation["policy"].update({key: None for key in INTERVAL_KEYS})
    content = ReportContent(evaluation, reward_margin=1.0, base_mean_words=20.0, tuned_mean_words=50.0, rows=[],
                            plots=[], gold_scorer="sample-summaries")
    notes = " ".join(content.observations())
    assert "reward hacking" in notes and "moved far" in notes and "leak" not in notes and "separable" in notes
    assert "90% of the tuned responses were cut at the length limit" in notes
    evaluation["policy"]["tuned_truncated_fraction"] = 0.2
    evaluation["policy"]["tuned_gold_score"] = 0.9
    evaluation["policy"]["kl_to_base"] = 2.0
    evaluation["reward_model"]["eval_accuracy"] = 0.68
    assert content.observations() == []
    assert "Mean gold score (sample-summaries)" in render_html(content)
    assert "0.68 [0.97, 1]" in render_html(content) and "<td class=\"num\">0.9</td>" in render_html(content)
