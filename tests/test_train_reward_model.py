import json
import random

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.models import Placement, load_tokenizer, weights_dtype
from components.common.reward_scoring import RewardScorer
from components.evaluate.config import EvaluationConfig
from components.train_reward_model.config import RewardTrainingConfig
from components.train_reward_model.training import (
    RANK_LOSS_TAG,
    build_trainer,
    pairwise_accuracy,
    tokenized_pairs,
    train_reward_model,
)
from components.tune_policy.config import PolicyTuningConfig

SUBJECTS = "the cat the dog my post a day".split(" ")


def write_pairs(path, count, seed):
    """Pairs whose chosen answer says 'good' and whose rejected answer says 'bad'."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for _ in range(count):
            subject = rng.choice(["the cat", "the dog", "my post", "a day"])
            tail = rng.choice(["today", "on mat", "in park"])
            prompt = f"{subject} was {tail} [summary]: "
            row = {"prompt": prompt, "chosen": f"good {subject} {tail}", "rejected": f"bad {subject} {tail}"}
            handle.write(json.dumps(row) + "\n")


@pytest.fixture
def pairs(tmp_path):
    write_pairs(tmp_path / "train.jsonl", 128, seed=1)
    write_pairs(tmp_path / "eval.jsonl", 32, seed=2)
    return tmp_path


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_reward_model_learns_the_preference(tiny_causal_lm, pairs, tmp_path, lora_rank):
    config = RewardTrainingConfig(
        steps=12, batch_size=16, learning_rate_multiplier=100.0, lora_rank=lora_rank, logging_steps=2
    )
    results = train_reward_model(
        config,
        base_source=str(tiny_causal_lm),
        train_path=pairs / "train.jsonl",
        eval_path=pairs / "eval.jsonl",
        output_dir=tmp_path / "reward",
        log_dir=tmp_path / "logs",
        placement=Placement.detect(),
    )
    assert results["eval_accuracy"] >= 0.9
    assert results["eval_pairs"] == 32 and results["train_pairs"] == 128
    assert results["overlength_pairs_dropped"] == 0

    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    assert RANK_LOSS_TAG in events.Tags()["scalars"]
    assert "eval_accuracy" in events.Tags()["scalars"]

    # The saved model is a plain HF directory (LoRA merged), loadable without peft.
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "reward")
    assert model.config.num_labels == 1
    assert not (tmp_path / "reward" / "adapter_config.json").exists()


def test_effective_batch_is_kept_with_gradient_accumulation():
    config = RewardTrainingConfig(steps=1, batch_size=64, max_micro_batch_size=16)
    assert (config.micro_batch_size(), config.gradient_accumulation_steps()) == (16, 4)
    assert (config.micro_batch_size(8), config.gradient_accumulation_steps(8)) == (8, 1)  # 8 GPUs x 8 pairs
    assert (config.micro_batch_size(2), config.gradient_accumulation_steps(2)) == (16, 2)
    odd = RewardTrainingConfig(steps=1, batch_size=48, max_micro_batch_size=10)
    assert odd.micro_batch_size() * odd.gradient_accumulation_steps() == 48
    assert 3 * odd.micro_batch_size(3) * odd.gradient_accumulation_steps(3) == 48
    assert config.learning_rate == pytest.approx(1e-4)


def test_margin_reaches_the_loss_only_when_asked(tiny_causal_lm, pairs, tmp_path):
    from components.common.errors import UserInputError

    rows = [json.loads(line) for line in (pairs / "train.jsonl").read_text().splitlines()]
    config = RewardTrainingConfig(steps=2, batch_size=16, lora_rank=0, use_margin=True)
    arguments = dict(base_source=str(tiny_causal_lm), eval_path=pairs / "eval.jsonl",
                     output_dir=tmp_path / "reward", log_dir=tmp_path / "logs", placement=Placement.detect())
    with pytest.raises(UserInputError, match="128 of 128 training pairs have no margin"):
        train_reward_model(config, train_path=pairs / "train.jsonl", **arguments)
    with_margin = tmp_path / "with-margin.jsonl"
    with_margin.write_text("".join(json.dumps({**row, "margin": 1.5}) + "\n" for row in rows))
    results = train_reward_model(config, train_path=with_margin, **arguments)
    assert results["margin_in_loss"] == 1.0 and results["train_steps"] == 2


def test_center_rewards_coefficient_pulls_the_rewards_towards_zero(tiny_causal_lm, pairs, tmp_path):
    """TRL's centring term, coefficient x mean((r_chosen + r_rejected)^2), reaches the loss: with it the
    trained rewards sit near 0; without it (0: TRL's None) nothing holds them there."""
    eval_pairs = read_pairs(pairs / "eval.jsonl")

    def mean_abs_reward(coefficient: float) -> float:
        config = RewardTrainingConfig(steps=12, batch_size=16, learning_rate_multiplier=100.0, lora_rank=0,
                                      center_rewards_coefficient=coefficient)
        output = tmp_path / f"reward-{coefficient}"
        train_reward_model(config, str(tiny_causal_lm), pairs / "train.jsonl", pairs / "eval.jsonl", output,
                           tmp_path / f"logs-{coefficient}")
        scorer = RewardScorer(str(output), Placement.detect(), max_tokens=config.max_length)
        prompts = [Prompt.from_row(pair) for pair in eval_pairs for _ in range(2)]
        answers = [answer for pair in eval_pairs for answer in (pair["chosen"], pair["rejected"])]
        return float(scorer.score(prompts, answers).abs().mean())

    assert mean_abs_reward(1.0) < 0.5 * mean_abs_reward(0.0)


def read_pairs(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_stage_scores_a_pair_within_the_same_token_budget(tiny_causal_lm, pairs, tmp_path):
    # Prompts have up to 6 tokens and answers up to 5: the longest texts (with EOS) fill the budget exactly.
    config = RewardTrainingConfig(
        steps=4, batch_size=16, learning_rate_multiplier=100.0, lora_rank=0, max_prompt_tokens=6, max_response_tokens=5
    )
    evaluation = EvaluationConfig(max_prompt_tokens=6, max_new_tokens=5)
    policy_tuning = PolicyTuningConfig(steps=1, max_prompt_tokens=6, max_new_tokens=5)
    assert config.max_length == evaluation.reward_max_tokens == policy_tuning.reward_max_tokens == 12

    results = train_reward_model(
        config, str(tiny_causal_lm), pairs / "train.jsonl", pairs / "eval.jsonl", tmp_path / "reward", tmp_path / "logs"
    )
    assert results["overlength_pairs_dropped"] == 0
    # The evaluation stage's scorer gives the held-out pairs the scores the reward-model stage reported.
    scorer = RewardScorer(str(tmp_path / "reward"), Placement.detect(), max_tokens=evaluation.reward_max_tokens)
    accuracy, margin = pairwise_accuracy(scorer, read_pairs(pairs / "eval.jsonl"))
    assert (accuracy, margin) == pytest.approx((results["eval_accuracy"], results["eval_margin"]), abs=1e-6)


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_trainable_weights_stay_float32_when_computing_in_bf16(tiny_causal_lm, pairs, tmp_path, lora_rank):
    placement = Placement(torch.device("cpu"), torch.bfloat16)  # CUDA's placement, on the CPU
    config = RewardTrainingConfig(steps=1, batch_size=4, lora_rank=lora_rank)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="right")
    formatter = PromptFormatter(tokenizer, "auto", str(tiny_causal_lm))
    rows = tokenized_pairs(read_pairs(pairs / "eval.jsonl"), formatter, with_margin=False)
    trainer = build_trainer(config, str(tiny_causal_lm), tokenizer, rows, tmp_path, placement, TrainingProcesses(), [])

    assert trainer.args.bf16  # the forward passes are autocast to bf16
    dtypes = {name: p.dtype for name, p in trainer.model.named_parameters()}
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("score" in name for name in trainable)
    assert {dtypes[name] for name in trainable} == {torch.float32}
    frozen = {dtypes[name] for name in dtypes.keys() - trainable}
    # Under LoRA the frozen base weights stay in bf16 to save memory.
    assert frozen == ({torch.bfloat16} if lora_rank else set())
    assert weights_dtype(placement, lora_rank) == (torch.bfloat16 if lora_rank else torch.float32)


def test_encoder_reward_model_without_eos_token(pairs, tmp_path, monkeypatch):
    """A BERT reward model reads prompt + response framed by its own [CLS]/[SEP]: nothing appended."""
    from tiny_models import build_bert_classifier
    from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase
    from trl.trainer.reward_trainer import DataCollatorForPreference

    texts = []
    tokenize = PreTrainedTokenizerBase.__call__

    def recording_tokenize(self, text=None, *args, **kwargs):
        texts.extend([text] if isinstance(text, str) else text or [])
        return tokenize(self, text, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", recording_tokenize)
    bert = build_bert_classifier(tmp_path / "bert")
    config = RewardTrainingConfig(steps=6, batch_size=16, learning_rate_multiplier=100.0, lora_rank=0)
    results = train_reward_model(
        config, str(bert), pairs / "train.jsonl", pairs / "eval.jsonl", tmp_path / "reward", tmp_path / "logs"
    )
    assert results["train_pairs"] == 128 and results["overlength_pairs_dropped"] == 0
    assert results["eval_accuracy"] >= 0.9
    assert texts and not any("None" in text for text in texts)

    # RewardScorer gives each pair the score the model computes on the tokens it was trained on.
    eval_pairs = read_pairs(pairs / "eval.jsonl")
    scorer = RewardScorer(str(tmp_path / "reward"), Placement.detect(), max_tokens=EvaluationConfig().reward_max_tokens)
    rows = tokenized_pairs(eval_pairs, scorer.formatter, with_margin=False)
    assert all(row["chosen_ids"][0] == scorer.tokenizer.cls_token_id for row in rows)
    assert all(row["chosen_ids"][-1] == scorer.tokenizer.sep_token_id for row in rows)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "reward").eval()
    with torch.no_grad():
        trained = model(**DataCollatorForPreference(pad_token_id=scorer.tokenizer.pad_token_id)(rows)).logits[:, 0]
    prompts = [Prompt.from_row(p) for p in eval_pairs]
    scored = torch.cat([scorer.score(prompts, [p[side] for p in eval_pairs]) for side in ("chosen", "rejected")])
    torch.testing.assert_close(scored, trained, atol=1e-5, rtol=1e-5)
    assert pairwise_accuracy(scorer, eval_pairs) == pytest.approx((results["eval_accuracy"], results["eval_margin"]))
