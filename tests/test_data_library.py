"""The shared data library's parts: readers, Cloud Storage access, length checks, splits, books."""

import io
import json
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from components.common import gcs_paths
from components.common.data import readers, sources
from components.common.data.lengths import DROP, TRUNCATE, LengthChecker, may_exceed
from components.common.data.loading import PREFERENCE, DataSettings, load_dataset
from components.common.data.records import PreferencePair, PromptRow, RowRef
from components.common.data.splitting import leaked_pairs, split_pairs, split_prompts
from components.common.data.transcripts import TURN_SEPARATOR, Message, chat_prompt, parse_transcript
from components.common.errors import UserInputError

SAMPLES = Path(__file__).parent / "data_samples"
REF = RowRef("test", 1)


@pytest.fixture(scope="module")
def byte_bpe():
    return AutoTokenizer.from_pretrained(SAMPLES / "tokenizer")


def unigram_with_metaspace():
    """A SentencePiece-style tokenizer (Unigram, Metaspace prefix, byte fallback off): a second kind."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    corpus = ["the cat sat on the mat", "a dog ran in the park", "rain falls on the quiet town"] * 20
    tokenizer.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=60, unk_token="<unk>",
                                                                  special_tokens=["<unk>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


def test_a_text_shorter_in_bytes_than_the_limit_never_has_more_tokens(byte_bpe):
    """The shortcut that lets the length check skip short texts holds for both kinds of tokenizer."""
    rng = random.Random(0)
    alphabet = "abc xyz é ü 中文 😀 \n\t" + "".join(chr(c) for c in range(0x20, 0x7F))
    for tokenizer in (byte_bpe, unigram_with_metaspace()):
        for _ in range(300):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
            tokens = len(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False))
            assert tokens <= len(text.encode()) + 1
            assert may_exceed(text, tokens - 1)  # never skipped under a limit it is over


def test_lengths_are_sampled_for_the_distribution_but_counted_exactly(byte_bpe, monkeypatch):
    monkeypatch.setattr(LengthChecker, "FULL_SAMPLE_EXAMPLES", 5)
    monkeypatch.setattr(LengthChecker, "SAMPLE_EVERY", 3)
    prompts = [PromptRow("word " * (i % 7 + 1), REF) for i in range(20)]
    counts = [len(byte_bpe(p.prompt, add_special_tokens=False)["input_ids"]) for p in prompts]
    checker = LengthChecker(byte_bpe, prompt_limit=15, answer_limit=8, policy=DROP)
    kept = checker.check(prompts[:12])[0] + checker.check(prompts[12:])[0]
    sampled = [i for i in range(20) if i < 5 or i % 3 == 0]
    assert checker.stats.lengths["prompt"] == [counts[i] for i in sampled]
    assert checker.stats.over_limit["prompt"] == sum(1 for c in counts if c > 15)
    assert len(kept) == sum(1 for c in counts if c <= 15)


def test_truncation_cuts_at_token_boundaries(byte_bpe):
    pair = PreferencePair("one two three four five six seven eight nine ten", "alpha beta gamma delta epsilon",
                          "omega psi chi phi upsilon", REF)
    checker = LengthChecker(byte_bpe, prompt_limit=10, answer_limit=6, policy=TRUNCATE)
    kept, rejects = checker.check([pair])
    encode = lambda text: byte_bpe(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert kept == [pair] and not rejects
    assert "one two three four five six seven eight nine ten".endswith(pair.prompt) and len(encode(pair.prompt)) <= 10
    assert "alpha beta gamma delta epsilon".startswith(pair.chosen) and len(encode(pair.chosen)) <= 6
    # Answers that differ only after the limit become identical: that pair is rejected, not kept.
    twin = PreferencePair("p", "same beginning here, then A", "same beginning here, then B", REF)
    kept, rejects = checker.check([twin])
    assert not kept and rejects[0].reason == "identical_answers"


def test_truncation_never_leaves_a_blank_text(byte_bpe):
    """A cut that keeps only whitespace would pass validation and stop training: it is rejected instead."""
    checker = LengthChecker(byte_bpe, prompt_limit=3, answer_limit=4, policy=TRUNCATE)
    kept, rejects = checker.check([PreferencePair("Why?", " \n\n\n\nBecause air scatters blue light.", " No.", REF)])
    assert not kept and [(r.reason, r.field) for r in rejects] == [("empty_field", "chosen")]
    kept, rejects = checker.check([PromptRow("Question?       \n\n\n", REF)])
    assert not kept and [(r.reason, r.field) for r in rejects] == [("empty_field", "prompt")]
    # The prompt's messages stay whole: only the text is cut.
    conversation = (Message("user", "one two three four five six"),)
    text = "Human: one two three four five six\n\nAssistant:"
    pair = PreferencePair(text, " Yes.", " No.", REF, prompt_messages=conversation)
    assert checker.check([pair]) == ([pair], []) and len(pair.prompt) < len(text) and text.endswith(pair.prompt)
    assert pair.prompt_messages == conversation


def test_a_conversation_keeps_one_leading_system_message():
    """Vertex's context and the system messages are one system message, as chat templates take them."""
    prompt = chat_prompt([Message("system", "Be brief."), Message("user", "Hi?")], context="You sell boats.")
    assert prompt.text == "You sell boats.\n\nBe brief.\n\nHuman: Hi?\n\nAssistant:"
    assert prompt.messages == (Message("system", "You sell boats.\n\nBe brief."), Message("user", "Hi?"))
    assert prompt.with_instruction("Answer.").messages[1] == Message("user", "Answer.\n\nHi?")


def test_hh_transcripts_parse_into_messages_only_when_clean():
    prompt = "\n\nHuman: Hi.\n\nAssistant: Hello! How can I help?\n\nHuman: A joke, please.\n\nAssistant:"
    messages = parse_transcript(prompt)
    assert messages == (Message("user", "Hi."), Message("assistant", "Hello! How can I help?"),
                        Message("user", "A joke, please."))
    assert TURN_SEPARATOR + chat_prompt(list(messages)).text == prompt
    assert parse_transcript("Human: Hi.\n\nAssistant:") == (Message("user", "Hi."),)
    for untidy in ("Hi.\n\nAssistant:", "\n\nHuman: Hi.", "\n\nHuman: Hi.\n\nAssistant: Yo.",
                   "\n\nAssistant: Hi.\n\nAssistant:", "\n\nHuman:  \n\nAssistant:"):
        assert parse_transcript(untidy) is None, untidy


def test_json_arrays_are_decoded_across_read_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "JSON_ARRAY_CHUNK_CHARS", 7)
    rows = [{"prompt": "p" * n, "chosen": ["a", {"b": [1, 2]}], "rejected": "]"} for n in range(1, 6)]
    path = tmp_path / "rows.json"
    path.write_text(" \n" + json.dumps(rows, indent=2))
    records = list(readers.read_records(sources.resolve(str(path))[0]))
    assert [r.value for r in records] == rows and [r.ref.row for r in records] == [0, 1, 2, 3, 4]
    path.write_text("[]")
    assert list(readers.read_records(sources.resolve(str(path))[0])) == []


def test_csv_records_spanning_lines_keep_their_line_numbers(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('prompt,chosen,rejected\n"a\nmulti-line\nprompt",x,y\nplain,x,\n')
    records = list(readers.read_records(sources.resolve(str(path))[0]))
    assert [r.ref.row for r in records] == [2, 5] and records[0].value["prompt"] == "a\nmulti-line\nprompt"
    assert records[0].from_text


class FakeBlob:
    def __init__(self, name: str, data: bytes):
        self.name, self.data = name, data

    def exists(self) -> bool:
        return True

    def open(self, mode: str):
        assert mode == "rb"
        return io.BytesIO(self.data)


class FakeClient:
    """The two calls of google-cloud-storage the reader makes, over an in-memory bucket."""

    def __init__(self, blobs: dict[str, bytes]):
        self.blobs = {name: FakeBlob(name, data) for name, data in blobs.items()}

    def bucket(self, name: str):
        client = self

        class Bucket:
            def blob(self, path):
                return client.blobs.get(path) or type("Missing", (), {"exists": lambda self: False})()

        return Bucket()

    def list_blobs(self, bucket, prefix: str):
        return [blob for name, blob in sorted(self.blobs.items()) if name.startswith(prefix)]


def test_gs_uris_are_read_through_the_storage_client(monkeypatch):
    line = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}).encode() + b"\n"
    other = json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}).encode() + b"\n"
    client = FakeClient({"data/train-0.jsonl": line, "data/train-1.jsonl": other, "data/_SUCCESS": b""})
    monkeypatch.setattr(gcs_paths, "GCS_FUSE_ROOT", Path("/nonexistent-mount"))
    monkeypatch.setattr(sources, "gcs_client", lambda uri: client)
    for uri in ("gs://bucket/data", "gs://bucket/data/train-*.jsonl"):
        loaded = load_dataset(uri, PREFERENCE, DataSettings())
        assert [p.prompt for p in loaded.examples] == ["p", "q"]
        assert loaded.ledger.files == ["gs://bucket/data/train-0.jsonl", "gs://bucket/data/train-1.jsonl"]
    with pytest.raises(UserInputError, match="gs://bucket/nothing-here: no object matches"):
        sources.resolve("gs://bucket/nothing-here")


def test_pair_splits_keep_prompts_together_and_follow_the_seed():
    pairs = [PreferencePair(f"prompt {i % 10}", f"good {i}", f"bad {i}", RowRef("f", i)) for i in range(40)]
    train, held = split_pairs(pairs, 0.2, seed=1)
    assert len(held) == 8 and len(train) == 32
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert split_pairs(list(reversed(pairs)), 0.2, seed=1)[1] == list(reversed(held))  # order-independent
    assert split_pairs(pairs, 0.2, seed=2)[1] != held
    assert split_pairs(pairs, 0.0, seed=1) == (pairs, [])
    assert not leaked_pairs(train, held) and len(leaked_pairs(train, train[:3])) == 3


def test_prompt_splits_respect_the_cap_and_keep_a_training_row():
    rows = [PromptRow(f"p{i}", RowRef("f", i)) for i in range(50)]
    train, held = split_prompts(rows, 0.5, max_eval=10, seed=0)
    assert (len(train), len(held)) == (40, 10)
    assert split_prompts(rows[:1], 0.5, max_eval=10, seed=0) == (rows[:1], [])


def test_expanded_pairs_that_repeat_or_tie_still_balance_the_books(tmp_path):
    # Pairs: (same, same) identical; (same, other) made twice in a row: one used, one duplicate.
    row = {"prompt": "r", "responses": ["same", "same", "other"], "ranks": [1, 2, 3]}
    path = tmp_path / "ranking.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")  # the same ranking twice
    ledger = load_dataset(str(path), PREFERENCE, DataSettings(max_bad_row_fraction=1.0)).ledger
    assert (ledger.input_rows, ledger.expansion, ledger.used, ledger.rejected, ledger.duplicates) == (2, 4, 1, 2, 3)
    assert ledger.balanced()
