"""DPO and KTO on the tiny models: the policy moves toward the chosen answers, its output is a plain
HF model that generates, KTO's rows and class balance, tokenization as the policy generates,
clear errors for bad settings, and a resumed run that ends as an uninterrupted one."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.errors import UserInputError
from components.common.generation import encode_prompts, generate_responses
from components.common.models import Placement, load_tokenizer
from components.common.canonical_data import read_preference_pairs
from components.common.implicit_reward import implicit_reward_accuracy
from components.tune_preference.config import PreferenceTuningConfig
from components.tune_preference.kto_rows import ClassBalance, KTORow, unpaired_rows
from components.tune_preference.trainers import build_trainer
from components.tune_preference.training import train_preference_policy, training_rows
from components.tune_preference.trl_rows import dpo_rows, with_kl_completions
from test_train_reward_model import write_pairs
from tiny_models import PROMPTS

CPU = Placement(torch.device("cpu"), torch.float32)
PEAK_LEARNING_RATE = 3e-3  # the tiny random model needs a large step to move in a few steps


@pytest.fixture
def pairs(tmp_path):
    """Pairs whose chosen answer says 'good' and whose rejected answer says 'bad' (test_train_reward_model)."""
    write_pairs(tmp_path / "train.jsonl", 64, seed=1)
    write_pairs(tmp_path / "eval.jsonl", 32, seed=2)
    return tmp_path


def settings(**overrides) -> PreferenceTuningConfig:
    values = dict(steps=8, batch_size=16, learning_rate_multiplier=PEAK_LEARNING_RATE / 1e-5, logging_steps=2,
                  max_prompt_tokens=16, max_response_tokens=8)
    return PreferenceTuningConfig(**{**values, **overrides})


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_plain_model_that_generates(policy_dir) -> None:
    from transformers import AutoModelForCausalLM

    assert not (policy_dir / "adapter_config.json").exists()  # LoRA merged
    assert json.loads((policy_dir / "generation_config.json").read_text())["eos_token_id"] is not None
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    batch = generate_responses(model, load_tokenizer(str(policy_dir), padding_side="left"), PROMPTS[:2],
                               max_new_tokens=4, max_prompt_tokens=16)
    assert len(batch.texts) == 2 and batch.response_lengths.min() >= 1


def test_dpo_through_the_component_prefers_the_chosen_answers(tmp_path, tiny_causal_lm, pairs):
    from kfp.dsl import Artifact, Dataset, Metrics, Model

    from components.tune_preference.component import tune_preference

    out = tmp_path / "out"
    tune_preference(
        base_model=Model(uri=str(tiny_causal_lm)), preference_data=Dataset(uri=str(pairs)), algorithm="dpo",
        preference_tuning_train_steps=10, reinforcement_learning_rate_multiplier=PEAK_LEARNING_RATE / 1e-5,
        batch_size=16, dpo_beta=0.1, dpo_loss_type="sigmoid", kto_desirable_weight=1.0, kto_undesirable_weight=1.0, policy_lora_rank=0,
        use_chat_template="auto", prompt_sequence_length=16, target_sequence_length=8, seed=0, code_version="test",
        checkpoint_root=str(tmp_path / "checkpoints"), pipeline_root="", checkpoint_interval_steps=0, replica_count=1,
        sharding="auto",
        policy=Model(uri=str(out / "policy")), metrics=Metrics(uri=str(out / "metrics")),
        tensorboard_logs=Artifact(uri=str(out / "logs")),
    )
    assert list((tmp_path / "checkpoints").iterdir()) == []  # saved along the way, deleted at the end
    metrics = json.loads((out / "metrics").read_text())
    assert metrics["train_pairs"] == 64 and metrics["eval_pairs"] == 32 and metrics["train_steps"] == 10
    assert metrics["eval_implicit_reward_accuracy"] >= 0.9 and metrics["eval_implicit_reward_margin"] > 0

    logged = scalars(out / "logs")
    for tag in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "learning_rate"):
        assert [step for step, _ in logged[tag]] == [5, 10], tag  # every logging_steps (5) steps
    margins = [value for _, value in logged["rewards/margins"]]
    assert margins[-1] > margins[0] > 0  # the chosen answers gain on the rejected ones as training goes on
    assert logged["eval_implicit_reward_accuracy"] == [(10, pytest.approx(metrics["eval_implicit_reward_accuracy"]))]

    # The training pairs: every one ordered correctly by the tuned policy against its base.
    train_figures = implicit_reward_accuracy(str(out / "policy"), str(tiny_causal_lm),
                                             read_preference_pairs(pairs / "train.jsonl"), CPU)
    assert train_figures["implicit_reward_accuracy"] == 1.0
    assert_plain_model_that_generates(out / "policy")


def test_dpo_with_lora_trains_the_adapters_against_the_adapter_free_policy(tmp_path, tiny_causal_lm, pairs):
    results = train_preference_policy(settings(lora_rank=2), str(tiny_causal_lm), pairs / "train.jsonl",
                                      pairs / "eval.jsonl", tmp_path / "policy", tmp_path / "logs", CPU)
    assert results["eval_implicit_reward_accuracy"] >= 0.9 and results["eval_implicit_reward_margin"] > 0
    assert_plain_model_that_generates(tmp_path / "policy")


@pytest.fixture
def tokenized(tiny_causal_lm, pairs):
    """The tokenizer of the tiny policy and the held-out pairs as DPO's rows."""
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="right")
    formatter = PromptFormatter(tokenizer, "auto", str(tiny_causal_lm))
    return tokenizer, dpo_rows(read_rows(pairs / "eval.jsonl"), formatter, 16, 8)


def test_the_reference_is_the_base_policy_never_reloaded_by_trl(tmp_path, tiny_causal_lm, tokenized, monkeypatch):
    import trl.trainer.dpo_trainer

    def refuse(*args, **kwargs):
        raise AssertionError("TRL reloaded a model from a path")

    monkeypatch.setattr(trl.trainer.dpo_trainer, "create_model_from_path", refuse)
    arguments = (str(tiny_causal_lm), *tokenized, tmp_path, CPU, TrainingProcesses(), [])

    full = build_trainer(settings(lora_rank=0, loss_type="sigmoid,sft"), *arguments)
    assert full.loss_types == ["sigmoid", "sft"]
    assert full.ref_model is not None and full.ref_model is not full.model
    assert not any(p.requires_grad for p in full.ref_model.parameters())
    for (name, reference), policy in zip(full.ref_model.named_parameters(), full.model.parameters()):
        torch.testing.assert_close(reference, policy, msg=name)

    lora = build_trainer(settings(lora_rank=2), *arguments)
    assert lora.ref_model is None  # TRL disables the adapters for the reference
    trainable = {name for name, p in lora.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_trainable_weights_stay_float32_when_computing_in_bf16(tmp_path, tiny_causal_lm, tokenized, lora_rank):
    placement = Placement(torch.device("cpu"), torch.bfloat16)  # CUDA's placement, on the CPU
    trainer = build_trainer(settings(lora_rank=lora_rank), str(tiny_causal_lm), *tokenized, tmp_path, placement,
                            TrainingProcesses(), [])
    assert trainer.args.bf16  # the forward passes are autocast to bf16
    parameters = dict(trainer.model.named_parameters())
    trainable = {name for name, p in parameters.items() if p.requires_grad}
    assert {parameters[name].dtype for name in trainable} == {torch.float32}
    frozen = {parameters[name].dtype for name in parameters.keys() - trainable}
    assert frozen == ({torch.bfloat16} if lora_rank else set())  # under LoRA the base stays in bf16
    if not lora_rank:
        assert {p.dtype for p in trainer.ref_model.parameters()} == {torch.bfloat16}


def test_kto_learns_from_desirable_and_undesirable_rows(tmp_path, tiny_causal_lm, pairs, capsys):
    results = train_preference_policy(settings(algorithm="kto", lora_rank=0), str(tiny_causal_lm),
                                      pairs / "train.jsonl", pairs / "eval.jsonl", tmp_path / "policy",
                                      tmp_path / "logs", CPU)
    # 64 pairs over 12 distinct prompts, one chosen and one rejected answer each.
    assert (results["desirable_rows"], results["undesirable_rows"]) == (12, 12)
    assert results["kto_class_balance"] == 1.0 and results["kto_class_balance_in_range"] == 1.0
    assert "warning" not in capsys.readouterr().out
    assert results["eval_implicit_reward_accuracy"] >= 0.9 and results["eval_implicit_reward_margin"] > 0
    logged = scalars(tmp_path / "logs")
    assert {"loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins"} <= logged.keys()
    assert_plain_model_that_generates(tmp_path / "policy")


def test_kto_rows_are_the_distinct_answers_of_the_pairs():
    # Unpaired data (2 good and 3 bad answers to one prompt) reaches KTO as its 6 pairs.
    good, bad = ["g1", "g2"], ["b1", "b2", "b3"]
    pairs = [{"prompt": "p", "chosen": g, "rejected": b} for g in good for b in bad]
    pairs.append({"prompt": "q", "chosen": "g1", "rejected": "b1"})
    rows = unpaired_rows(pairs)
    p, q = Prompt("p"), Prompt("q")
    assert rows == [KTORow(p, "g1", True), KTORow(p, "b1", False), KTORow(p, "b2", False), KTORow(p, "b3", False),
                    KTORow(p, "g2", True), KTORow(q, "g1", True), KTORow(q, "b1", False)]

    balance = ClassBalance.of(rows, desirable_weight=1.0, undesirable_weight=1.0)
    assert (balance.desirable, balance.undesirable, balance.ratio) == (3, 4, 0.75)
    assert not balance.in_recommended_range
    warning = balance.warning()
    assert "\n" not in warning and "0.75" in warning and "kto_desirable_weight in [1.33, 1.78]" in warning
    assert ClassBalance(3, 4, 1.5, 1.0).in_recommended_range  # a weight from the advised range fixes it
    assert ClassBalance(3, 4, 1.0, 0.7).in_recommended_range
    assert ClassBalance(4, 3, 1.0, 1.0).in_recommended_range  # 4/3, the upper end
    assert not ClassBalance(2, 1, 1.0, 1.0).in_recommended_range


def test_an_unbalanced_kto_run_warns_on_one_line(tiny_causal_lm, pairs, capsys):
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="right")
    formatter = PromptFormatter(tokenizer, "auto", str(tiny_causal_lm))
    train = read_rows(pairs / "train.jsonl")
    rows, facts = training_rows(settings(algorithm="kto", desirable_weight=2.0), train, formatter, TrainingProcesses())
    assert facts["kto_class_balance"] == 2.0 and facts["kto_class_balance_in_range"] == 0.0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("warning: KTO class balance 2.00")
    assert sorted(row["label"] for row in rows) == [False] * 12 + [True] * 12


def test_kl_completions_come_from_the_same_micro_batch():
    rows = [{"completion_ids": [i]} for i in range(5)]
    completed = with_kl_completions(rows, micro_batch_size=2)
    assert [row["KL_completion_ids"] for row in completed] == [[1], [0], [3], [2], [4]]


def test_rows_are_tokenized_as_the_policy_generates():
    """A BPE tokenizer joins a prompt's trailing space to the answer's first word when both are one
    text; the rows keep the prompt's tokens as generation encodes them and the answer's own tokens."""
    from embedded_default.tiny_model import train_tokenizer

    corpus = [f"{subject} was {tail} [summary]: good {subject} {tail}" for subject in ("the cat", "my dog")
              for tail in ("today", "in the park")] * 20
    tokenizer = train_tokenizer(corpus, vocab_size=300)
    formatter = PromptFormatter(tokenizer, "auto", "bpe")
    pair = {"prompt": "the cat was in the park today [summary]: ", "chosen": "good the cat", "rejected": "good"}
    [row] = dpo_rows([pair], formatter, max_prompt_tokens=6, max_response_tokens=3)

    prompt_ids, mask = encode_prompts(tokenizer, [pair["prompt"]], 6, torch.device("cpu"))
    assert row["prompt_ids"] == prompt_ids[0][mask[0].bool()].tolist()  # generation's own encoding
    assert tokenizer.convert_ids_to_tokens(row["prompt_ids"]) == ["Ġpark", "Ġtoday", "Ġ[", "summary", "]:", "Ġ"]  # its end
    # An answer that fits ends with EOS; a longer one is cut at the budget, EOS included, and gets none.
    assert tokenizer.convert_ids_to_tokens(row["rejected_ids"]) == ["go", "od", tokenizer.eos_token]
    assert tokenizer.convert_ids_to_tokens(row["chosen_ids"]) == ["go", "od", "Ġthe"]
    # As one text (TRL's way), prompt and answer meet in one token the policy never writes after this prompt.
    assert "Ġgood" in tokenizer.convert_ids_to_tokens(tokenizer(pair["prompt"] + pair["chosen"])["input_ids"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(loss_type="sigmod"), "loss_type (dpo_loss_type) must be one of sigmoid, hinge, ipo"),
        (dict(loss_type="sigmoid,exo_pair"), "or several of them joined by commas; got 'sigmoid,exo_pair'"),
        (dict(algorithm="ppo"), "algorithm must be one of dpo, kto, got 'ppo'"),
        (dict(beta=0.0), "beta (dpo_beta) must be > 0"),
        (dict(learning_rate_multiplier=0.0), "the learning rate must be > 0"),
        (dict(desirable_weight=-1.0), "kto_desirable_weight, kto_undesirable_weight) must be > 0"),
        (dict(steps=0, lora_rank=-1), "steps must be >= 1, got 0; lora_rank (policy_lora_rank) must be >= 0"),
        (dict(use_chat_template="yes"), "use_chat_template must be one of auto, true, false"),
    ],
)
def test_bad_settings_are_one_clear_error(overrides, message):
    with pytest.raises(UserInputError, match="^preference-tuning \\(DPO/KTO\\) settings: ") as error:
        settings(**overrides).validate()
    assert message in str(error.value) and "\n" not in str(error.value)


def test_dpo_losses_joined_by_commas_are_summed():
    config = settings(loss_type="sigmoid, sft")  # RPO: DPO plus the chosen answers' NLL
    config.validate()
    assert config.loss_types == ["sigmoid", "sft"]


def test_a_batch_the_gpus_cannot_share_is_an_error():
    with pytest.raises(UserInputError, match="batch_size 6 is not a multiple of the 4 GPUs"):
        settings(batch_size=6).validate(processes=4)


def test_micro_batches_make_up_each_step():
    dpo = settings(batch_size=64, max_micro_batch_size=16)
    assert (dpo.micro_batch_size(), dpo.gradient_accumulation_steps()) == (16, 4)
    kto = settings(algorithm="kto", batch_size=64, max_micro_batch_size=16)  # a KTO step is 128 rows
    assert (kto.micro_batch_size(), kto.gradient_accumulation_steps()) == (32, 4)
    assert (kto.micro_batch_size(8), kto.gradient_accumulation_steps(8)) == (16, 1)


class Interrupted(Exception):
    pass


def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one(tmp_path, tiny_causal_lm, pairs,
                                                                        monkeypatch, capsys):
    config = settings(steps=6, batch_size=8, max_micro_batch_size=4, lora_rank=0)
    data = dict(policy_source=str(tiny_causal_lm), train_path=pairs / "train.jsonl", eval_path=pairs / "eval.jsonl",
                placement=CPU)
    straight = train_preference_policy(config, **data, output_dir=tmp_path / "straight", log_dir=tmp_path / "s-logs")

    folder = tmp_path / "checkpoints" / "tune_preference-0123"
    attempt = dict(**data, output_dir=tmp_path / "resumed", log_dir=tmp_path / "r-logs", checkpoint_dir=str(folder),
                   checkpoint_interval_steps=2)
    from components.common.trainer import checkpoints as trainer_checkpoints

    bookkeeping = trainer_checkpoints.checkpoint_bookkeeping

    def stopping_after_the_first_checkpoint(trainer, *args):
        callback = bookkeeping(trainer, *args)
        on_save = callback.on_save

        def save_then_stop(args, state, control, **kwargs):
            on_save(args, state, control, **kwargs)
            raise Interrupted(f"stopped after the checkpoint of step {state.global_step}")

        callback.on_save = save_then_stop
        return callback

    monkeypatch.setattr(trainer_checkpoints, "checkpoint_bookkeeping", stopping_after_the_first_checkpoint)
    with pytest.raises(Interrupted, match="step 2"):
        train_preference_policy(config, **attempt)
    monkeypatch.undo()

    capsys.readouterr()
    resumed = train_preference_policy(config, **attempt)
    assert f"resuming DPO from step 2 of 6 (checkpoint {folder / 'checkpoint-2'})" in capsys.readouterr().out
    assert resumed == straight  # train_loss over all 6 steps included
    weights = [(tmp_path / run / "model.safetensors").read_bytes() for run in ("straight", "resumed")]
    assert weights[0] == weights[1]
    assert scalars(tmp_path / "r-logs")["rewards/margins"] == scalars(tmp_path / "s-logs")["rewards/margins"]
    assert not folder.exists()
