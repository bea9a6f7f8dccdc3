import json
import random

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from components.common.models import Placement
from components.train_reward_model.config import RewardTrainingConfig
from components.train_reward_model.training import RANK_LOSS_TAG, train_reward_model

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
