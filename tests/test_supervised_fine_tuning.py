"""Supervised fine-tuning: what sft_dataset names, how its rows are read and accounted for, which
tokens carry the loss, and real training on a tiny model (through the KFP wrapper)."""

import json
import math
from pathlib import Path

import pytest
import torch
from kfp.dsl import Artifact, Dataset, Metrics, Model

from components.common.chat_templates import PromptFormatter
from components.common.data.records import RawRecord, RowRef
from components.common.data.transcripts import Prompt
from components.common.distributed import TrainingProcesses
from components.common.errors import UserInputError
from components.common.generation import encode_prompts
from components.common.models import (
    MODEL_REFERENCE_FILE,
    Placement,
    load_tokenizer,
    model_source,
    write_model_reference,
)
from components.supervised_fine_tuning import data as sft_data
from components.supervised_fine_tuning.component import skip_supervised_fine_tuning, supervised_fine_tuning
from components.supervised_fine_tuning.config import SupervisedTrainingConfig
from components.supervised_fine_tuning.training import build_trainer, tokenized_examples, train_supervised
from tiny_models import PROMPTS

CPU = Placement(torch.device("cpu"), torch.float32)
# What the tiny model is taught to answer: every word is in the tiny tokenizer's vocabulary.
COMPLETIONS = [" my cat is happy", " the dog ran", " a good day", " short post", " the cat sat on the mat"]
TAUGHT = dict(zip(PROMPTS, COMPLETIONS))
# A chat template over the tiny vocabulary's words (roles become <unk>): each turn ends with EOS.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ' ' + message['content'] + ' </s> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant ' }}{% endif %}"
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and lose much when another process takes the core."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def taught_rows() -> list[dict]:
    return [{"prompt": prompt, "completion": completion} for prompt, completion in TAUGHT.items()]


def completion_nll(model, tokenizer, rows: list[dict]) -> float:
    """Mean negative log-likelihood per completion token (EOS included) given its prompt."""
    total, count = 0.0, 0
    for row in rows:
        prompt_ids = tokenizer(row["prompt"])["input_ids"]
        target = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + target])).logits[0, len(prompt_ids) - 1 : -1]
        total += torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="sum").item()
        count += len(target)
    return total / count


def scalar_tags(log_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {tag: [event.value for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def run_component(tmp_path: Path, base: Path, sft_dataset: str, preference_dir: Path | None = None, **settings):
    arguments = dict(
        sft_train_epochs=1, sft_learning_rate_multiplier=1.0, batch_size=8, use_chat_template="auto",
        prompt_sequence_length=32, target_sequence_length=8, max_bad_row_fraction=0.01, seed=0,
        code_version="test", checkpoint_root=str(tmp_path / "checkpoints"), pipeline_root="",
        checkpoint_interval_steps=0, replica_count=1, sharding="auto", sft_data_fingerprint="", system_prompt="",
    )
    arguments.update(settings)
    out = tmp_path / "out"
    supervised_fine_tuning(
        base_model=Model(uri=str(base)), preference_data=Dataset(uri=str(preference_dir or tmp_path / "no-pairs")),
        sft_dataset=sft_dataset, model=Model(uri=str(out / "model")), metrics=Metrics(uri=str(out / "metrics")),
        tensorboard_logs=Artifact(uri=str(out / "logs")), **arguments,
    )
    return out


def test_fine_tuning_teaches_the_completions(tmp_path, tiny_causal_lm):
    """Through the KFP wrapper: the completions' likelihood rises and greedy decoding gives them back."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dataset = write_jsonl(tmp_path / "sft.jsonl", taught_rows())
    write_model_reference(tmp_path / "base", str(tiny_causal_lm), "tiny base by reference")
    epochs = 40
    out = run_component(tmp_path, tmp_path / "base", str(dataset), sft_train_epochs=epochs, batch_size=5,
                        sft_learning_rate_multiplier=500.0, checkpoint_interval_steps=10)

    metrics = json.loads((out / "metrics").read_text())
    assert metrics["sft_examples"] == metrics["sft_rows_read"] == 5 and metrics["sft_rows_rejected"] == 0
    assert metrics["train_steps"] == epochs  # ceil(5 / 5) steps an epoch
    assert metrics["truncated_prompts"] == metrics["truncated_completions"] == 0
    assert metrics["learning_rate"] == pytest.approx(2e-5 * 500)
    assert list((tmp_path / "checkpoints").iterdir()) == []  # saved along the way, deleted at the end
    scalars = scalar_tags(out / "logs")
    for tag in ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "num_tokens", "train_loss"):
        assert tag in scalars, tag
    assert scalars["loss"][-1] < scalars["loss"][0] / 4

    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    tuned = AutoModelForCausalLM.from_pretrained(out / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    assert (out / "model" / "generation_config.json").is_file() and tuned.config.use_cache
    assert completion_nll(tuned, tokenizer, taught_rows()) < completion_nll(base, tokenizer, taught_rows()) / 4
    for prompt, completion in TAUGHT.items():
        prompt_ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        generated = tuned.generate(prompt_ids, max_new_tokens=8, do_sample=False)[0, prompt_ids.shape[1]:]
        expected = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert generated.tolist()[: len(expected)] == expected, prompt


def test_without_sft_dataset_the_stand_in_passes_the_base_model_on_by_reference(tmp_path, tiny_causal_lm):
    write_model_reference(tmp_path / "base-ref", str(tiny_causal_lm), "tiny base by reference")
    for base in (tiny_causal_lm, tmp_path / "base-ref"):  # a model directory, and a model by reference
        skipped = tmp_path / base.name / "skipped"
        skip_supervised_fine_tuning(base_model=Model(uri=str(base)), code_version="test",
                                    model=Model(uri=str(skipped / "model")),
                                    tensorboard_logs=Artifact(uri=str(skipped / "logs")))
        assert [path.name for path in (skipped / "model").iterdir()] == [MODEL_REFERENCE_FILE]  # no weights copied
        assert model_source(skipped / "model") == model_source(base) == str(tiny_causal_lm)
        assert list((skipped / "logs").iterdir()) == []
    # the DAG runs the stage itself only with a dataset; called without one it says so
    with pytest.raises(UserInputError, match="sft_dataset is empty"):
        run_component(tmp_path / "empty", tiny_causal_lm, sft_dataset="  ")


def test_preference_chosen_reads_the_chosen_answers_of_the_training_pairs(tmp_path):
    pairs = [
        {"prompt": "the cat sat [summary]:", "chosen": " good cat", "rejected": " bad cat"},
        {"prompt": "Human: hi\n\nAssistant:", "chosen": " good day", "rejected": " bad day",
         "prompt_messages": [{"role": "user", "content": "hi"}]},
        {"prompt": "the cat sat [summary]:", "chosen": " good cat", "rejected": " bad mat"},  # same example again
    ]
    train = write_jsonl(tmp_path / "train.jsonl", pairs)
    loaded = sft_data.read_sft_dataset("preference:chosen", train, max_bad_row_fraction=0.0)
    assert [(e.prompt, e.completion) for e in loaded.examples] == [(p["prompt"], p["chosen"]) for p in pairs[:2]]
    assert loaded.examples[1].prompt_messages == Prompt.from_row(pairs[1]).messages  # the conversation is kept
    assert (loaded.ledger.input_rows, loaded.ledger.used, loaded.ledger.duplicates) == (3, 2, 1)


def test_preference_chosen_teaches_the_chosen_answers_not_the_rejected_ones(tmp_path, tiny_causal_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pairs = [{"prompt": prompt, "chosen": " good" + completion, "rejected": " bad" + completion}
             for prompt, completion in TAUGHT.items()]
    write_jsonl((tmp_path / "pairs").mkdir() or tmp_path / "pairs" / "train.jsonl", pairs)
    out = run_component(tmp_path, tiny_causal_lm, "preference:chosen", preference_dir=tmp_path / "pairs",
                        sft_train_epochs=10, batch_size=5, sft_learning_rate_multiplier=500.0)
    assert json.loads((out / "metrics").read_text())["sft_examples"] == len(pairs)

    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    tuned = AutoModelForCausalLM.from_pretrained(out / "model")

    good, bad = tokenizer.convert_tokens_to_ids(["good", "bad"])
    for pair in pairs:  # the first word of the answer, where chosen and rejected differ
        with torch.no_grad():
            logits = tuned(torch.tensor([tokenizer(pair["prompt"])["input_ids"]])).logits[0, -1]
        assert logits.log_softmax(-1)[good] > logits.log_softmax(-1)[bad] + 1.0, pair["prompt"]


@pytest.mark.parametrize("preference_file", [None, ""])
def test_preference_chosen_without_preference_data_is_a_user_error(tmp_path, tiny_causal_lm, preference_file):
    pairs_dir = tmp_path / "pairs"
    pairs_dir.mkdir()
    if preference_file is not None:
        (pairs_dir / "train.jsonl").write_text(preference_file)  # what a run without preference_dataset writes
    with pytest.raises(UserInputError, match="sft_dataset is 'preference:chosen' but this run has no preference"):
        run_component(tmp_path, tiny_causal_lm, "preference:chosen", preference_dir=pairs_dir)
    with pytest.raises(UserInputError, match="^sft_dataset: 'preference:chosen' needs a preference_dataset"):
        sft_data.check_sft_dataset("preference:chosen", preference_dataset="", max_bad_row_fraction=0.01)


def test_rows_of_both_layouts_are_read_and_bad_ones_reported_with_file_line_and_field(tmp_path):
    rows = [
        {"prompt": "a post [summary]:", "completion": " good"},
        {"prompt": "a post [summary]:"},  # line 2: no completion
        {"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "yes"}]},
        {"prompt": "a post", "completion": 7},  # line 4: not a string
        '{"prompt": "broken',  # line 5: malformed JSON
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no"}]},
        {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "no"}]},  # line 7
        {"input_text": "a day [summary]:", "output_text": " happy"},  # Vertex's text layout
        {"prompt": "a post [summary]:", "completion": " good"},  # line 9: a duplicate of line 1
    ]
    dataset = write_jsonl(tmp_path / "sft.jsonl", rows)

    loaded = sft_data.read_sft_dataset(str(dataset), "", max_bad_row_fraction=0.5)
    books = loaded.ledger
    assert books.input_rows == books.used + books.rejected + books.duplicates == 9
    assert (books.used, books.rejected, books.duplicates) == (4, 4, 1)
    shown = [str(reject) for reject in books.rejects]
    assert shown[2].startswith(f"{dataset}, line 5: malformed JSON")
    assert shown[:2] + shown[3:] == [
        f"{dataset}, line 2, field 'completion': the row has neither a completion nor messages; expected "
        f"{sft_data.ACCEPTED_ROWS}",
        f"{dataset}, line 4, field 'completion': 'completion' must be a string, got int 7",
        f"{dataset}, line 7, field 'messages': 'messages': the last message must be the assistant's (the "
        "completion trained on)",
    ]
    chat = loaded.examples[1]
    assert (chat.prompt, chat.completion) == ("Human: hi\n\nAssistant:", " yes")
    assert chat.prompt_messages is not None and loaded.examples[3].completion == " happy"

    with pytest.raises(UserInputError) as error:
        sft_data.read_sft_dataset(str(dataset), "", max_bad_row_fraction=0.1)
    message = str(error.value)
    assert message.startswith(f"sft_dataset: {dataset}: 4 of 9 rows are bad (44.4%), more than "
                              "max_bad_row_fraction=0.1")
    assert f"{dataset}, line 2, field 'completion'" in message and "\n" not in message
    with pytest.raises(UserInputError, match=f"^sft_dataset: {dataset}: 4 of 9 rows are bad"):
        sft_data.check_sft_dataset(str(dataset), preference_dataset="", max_bad_row_fraction=0.1)
    assert sft_data.check_sft_dataset(str(dataset), "", 0.5) == f"checked sft_dataset: {loaded.summary()}"
    assert sft_data.check_sft_dataset("", "", 0.5) is None


def chat_tokenizer(tiny_causal_lm):
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="right")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def test_the_system_prompt_goes_before_every_example_prompt_without_one(tmp_path):
    dataset = write_jsonl(tmp_path / "sft.jsonl", [
        {"prompt": "a post [summary]:", "completion": " good"},
        {"messages": [{"role": "system", "content": "Own."}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "yes"}]},
    ])
    plain, own = sft_data.read_sft_dataset(str(dataset), "", 0.0, system_prompt="Be brief.").examples
    assert plain.prompt == "Be brief.\n\na post [summary]:"
    assert [m.to_json() for m in plain.prompt_messages] == [{"role": "system", "content": "Be brief."},
                                                           {"role": "user", "content": "a post [summary]:"}]
    assert own.prompt_messages[0].content == "Own."
    unchanged = sft_data.read_sft_dataset(str(dataset), "", 0.0).examples[0]
    assert (unchanged.prompt, unchanged.prompt_messages) == ("a post [summary]:", None)


def test_prompt_tokens_carry_no_loss_and_completions_end_with_eos(tmp_path, tiny_causal_lm):
    config = SupervisedTrainingConfig(batch_size=2, max_prompt_tokens=4, max_completion_tokens=4)
    rows = [
        {"prompt": "the cat sat [summary]:", "completion": " good cat"},
        {"prompt": "my day was good and the cat sat on the mat [summary]:", "completion": " a day"},  # long prompt
        {"prompt": "a post [summary]:", "completion": " the dog ran in the park"},  # long completion
    ]
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="right")
    formatter = PromptFormatter(tokenizer, "auto", str(tiny_causal_lm))
    examples = tokenized_examples(rows, formatter, config)
    trainer = build_trainer(config, str(tiny_causal_lm), tokenizer, examples, tmp_path / "trainer", CPU,
                            TrainingProcesses(), callbacks=[])

    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    eos = tokenizer.eos_token_id
    expected = [
        (ids("the cat sat [summary]:"), ids(" good cat") + [eos]),
        (ids("on the mat [summary]:"), ids(" a day") + [eos]),  # the prompt keeps its last 4 tokens
        (ids("a post [summary]:"), ids(" the dog ran in")),  # cut to its budget: no EOS to learn there
    ]
    for row, (prompt_ids, completion_ids) in zip(trainer.train_dataset, expected):
        assert row["input_ids"] == prompt_ids + completion_ids
        assert row["labels"] == [-100] * len(prompt_ids) + completion_ids
    assert [(e.prompt_truncated, e.completion_truncated) for e in examples] == [(False, False), (True, False),
                                                                                (False, True)]


def test_conversations_are_rendered_with_the_chat_template_unless_it_is_turned_off(tiny_causal_lm):
    tokenizer = chat_tokenizer(tiny_causal_lm)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "good day"},
                {"role": "user", "content": "and the cat"}, {"role": "assistant", "content": "the cat sat"}]
    dataset_row = sft_data.SupervisedRows().convert(RawRecord(RowRef("f", 1), {"messages": messages}))
    [example] = dataset_row.examples
    row = example.to_json()
    config = SupervisedTrainingConfig()
    [templated] = tokenized_examples([row], PromptFormatter(tokenizer, "auto", "tiny"), config)
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    answer = tokenizer("the cat sat", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert templated.input_ids == tokenizer(prompt)["input_ids"] + answer
    assert sum(templated.completion_mask) == 4  # "the cat sat" and EOS: earlier replies are context only
    [plain] = tokenized_examples([row], PromptFormatter(tokenizer, "false", "tiny"), config)
    assert plain.input_ids == tokenizer(example.prompt)["input_ids"] + answer


def test_examples_are_tokenized_as_the_policy_generates():
    """A BPE tokenizer joins a prompt's trailing space to the completion's first word when both are one
    text; SFT keeps the prompt's ids as generation encodes them, then the completion's own ids and EOS,
    as preference tuning does (components/common/sequences.py)."""
    from embedded_default.tiny_model import train_tokenizer

    corpus = [f"{subject} was {tail} [summary]: good {subject} {tail}" for subject in ("the cat", "my dog")
              for tail in ("today", "in the park")] * 20
    tokenizer = train_tokenizer(corpus, vocab_size=300)
    tokenizer.padding_side = "right"
    formatter = PromptFormatter(tokenizer, "auto", "bpe")
    prompt, completion = "the cat was in the park today [summary]: ", "good the cat"
    rows = [{"prompt": prompt, "completion": completion}, {"prompt": prompt, "completion": "good"}]
    config = SupervisedTrainingConfig(max_prompt_tokens=6, max_completion_tokens=3)
    cut, ended = tokenized_examples(rows, formatter, config)
    assert tokenizer.padding_side == "right"  # encoding the prompts as generation does left it as it was

    generation_ids, mask = encode_prompts(tokenizer, [prompt], 6, torch.device("cpu"))
    prompt_ids = generation_ids[0][mask[0].bool()].tolist()  # the last 6 tokens, ending in the space "Ġ"
    assert tokenizer.convert_ids_to_tokens(prompt_ids) == ["Ġpark", "Ġtoday", "Ġ[", "summary", "]:", "Ġ"]
    answer_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert ended.input_ids == prompt_ids + tokenizer("good", add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id]
    assert cut.input_ids == prompt_ids + answer_ids[:3]  # cut to its budget: no EOS
    assert cut.completion_mask == ended.completion_mask == [0] * 6 + [1] * 3
    assert [(e.prompt_truncated, e.completion_truncated) for e in (cut, ended)] == [(True, True), (True, False)]
    # As one text (the old way), prompt and completion meet in one token generation never writes here.
    assert "Ġgood" in tokenizer.convert_ids_to_tokens(tokenizer(prompt + completion)["input_ids"])


def test_a_run_stopped_after_a_checkpoint_resumes_and_ends_as_an_uninterrupted_run(tmp_path, tiny_causal_lm,
                                                                                    monkeypatch, capsys):
    from components.common.trainer import checkpoints as trainer_checkpoints

    rows = write_jsonl(tmp_path / "rows.jsonl", taught_rows() * 2)  # 10 examples: 5 steps an epoch
    config = SupervisedTrainingConfig(epochs=2, batch_size=2, learning_rate_multiplier=100.0, logging_steps=2)
    data = dict(base_source=str(tiny_causal_lm), rows_path=str(rows), placement=CPU)
    straight = train_supervised(config, output_dir=tmp_path / "straight", log_dir=tmp_path / "straight-logs", **data)

    folder = tmp_path / "checkpoints" / "supervised_fine_tuning-0123"
    attempt = dict(output_dir=tmp_path / "resumed", log_dir=tmp_path / "resumed-logs", checkpoint_dir=str(folder),
                   checkpoint_interval_steps=4, **data)
    mark_complete = trainer_checkpoints.mark_complete

    def stop_after_the_first_checkpoint(checkpoint, record):
        mark_complete(checkpoint, record)
        raise RuntimeError("stopped")

    monkeypatch.setattr(trainer_checkpoints, "mark_complete", stop_after_the_first_checkpoint)
    with pytest.raises(RuntimeError, match="stopped"):
        train_supervised(config, **attempt)
    monkeypatch.setattr(trainer_checkpoints, "mark_complete", mark_complete)
    capsys.readouterr()
    resumed = train_supervised(config, **attempt)
    assert f"resuming supervised fine-tuning from step 4 of 10 (checkpoint {folder / 'checkpoint-4'})" in (
        capsys.readouterr().out)

    assert resumed == straight  # train_loss over all 10 steps included
    assert (tmp_path / "resumed" / "model.safetensors").read_bytes() == (
        tmp_path / "straight" / "model.safetensors").read_bytes()
    straight_logs, resumed_logs = scalar_tags(tmp_path / "straight-logs"), scalar_tags(tmp_path / "resumed-logs")
    assert resumed_logs["loss"] == straight_logs["loss"] and len(resumed_logs["loss"]) == 5
    assert not folder.exists()
    assert math.isfinite(resumed["train_loss"])
