"""Bad input of every kind ends in one clear message naming the file and row, and a non-zero exit."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.common import gcs_paths
from components.common.canonical_data import PREFERENCE_FIELDS, read_canonical_rows
from components.common.data import sources
from components.common.errors import UserInputError
from validate_data_calls import validate

GOOD = {"input_text": "Summarize: the cat sat on the mat. [summary]: ", "candidate_0": "A cat sat.",
        "candidate_1": "Dogs bark.", "choice": 0}
REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).parent / "data_samples"


def good_rows(count: int, first: int = 0) -> list[str]:
    return [json.dumps({**GOOD, "input_text": f"Row {i}: {GOOD['input_text']}"}) for i in range(first, first + count)]


def books_of(out: Path, kind: str = "preference_data") -> dict:
    return json.loads((out / kind / "accounting.json").read_text())["datasets"][0]


# (case, the bad line (str or bytes), reason code, field named)
BAD_ROWS = [
    ("malformed JSON", '{"input_text": "x", "candidate_0": ', "malformed_json", None),
    ("not an object", "[1, 2, 3]", "not_an_object", None),
    ("missing field", json.dumps({k: v for k, v in GOOD.items() if k != "candidate_1"}), "missing_field",
     "candidate_1"),
    ("empty field", json.dumps({**GOOD, "candidate_0": "   "}), "empty_field", "candidate_0"),
    ("choice not 0/1", json.dumps({**GOOD, "choice": 2}), "bad_choice", "choice"),
    ("choice as text in JSON", json.dumps({**GOOD, "choice": "1"}), "bad_choice", "choice"),
    ("identical answers", json.dumps({**GOOD, "candidate_1": GOOD["candidate_0"]}), "identical_answers",
     "candidate_0, candidate_1"),
    ("wrong type", json.dumps({**GOOD, "input_text": 42}), "wrong_type", "input_text"),
    ("lone surrogate", json.dumps({**GOOD, "candidate_0": "A cat sat.\ud800"}), "not_utf8", "candidate_0"),
    ("not UTF-8", b'{"input_text": "caf\xe9", "candidate_0": "a", "candidate_1": "b", "choice": 0}', "not_utf8", None),
]


def write_lines(path: Path, lines: list) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("case, line, reason, field", BAD_ROWS, ids=[case[0] for case in BAD_ROWS])
def test_a_bad_row_is_named_and_fails_above_the_tolerance(tmp_path, capsys, case, line, reason, field):
    path = write_lines(tmp_path / "prefs.jsonl", good_rows(3) + [line] + good_rows(1, first=3))
    code, _ = validate(tmp_path, preference_dataset=str(path))
    output = capsys.readouterr().out
    assert code == 1 and "NOT USABLE" in output
    assert f"{path}, line 4" in output and reason in output and "1 of 5 rows are bad" in output
    if field:
        assert f"field '{field}'" in output


@pytest.mark.parametrize("case, line, reason, field", BAD_ROWS, ids=[case[0] for case in BAD_ROWS])
def test_below_the_tolerance_a_bad_row_goes_to_the_rejects_file(tmp_path, case, line, reason, field):
    path = write_lines(tmp_path / "prefs.jsonl", good_rows(3) + [line] + good_rows(1, first=3))
    code, out = validate(tmp_path, preference_dataset=str(path), max_bad_row_fraction=0.25)
    assert code == 0
    rejects = [json.loads(r) for r in (out / "preference_data" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"], r["reason"]) for r in rejects] == [(str(path), 4, reason)]
    books = books_of(out)
    assert (books["input_rows"], books["used"], books["rejected"], books["balanced"]) == (5, 4, 1, True)


LAYOUT_ERRORS = [
    ("chat messages", {"messages": [{"author": "robot", "content": "hi"}], "candidate_0": "a", "candidate_1": "b",
                       "choice": 0}, "bad_messages", "messages"),
    ("chat ends with assistant", {"messages": [{"author": "user", "content": "hi"},
                                               {"author": "assistant", "content": "yo"}],
                                  "candidate_0": "a", "candidate_1": "b", "choice": 1}, "bad_messages", "messages"),
    ("no shared prompt", {"chosen": "Hello there", "rejected": "Goodbye"}, "no_shared_prompt", "chosen, rejected"),
    ("score not a number", {"prompt": "p", "chosen": "a", "rejected": "b", "score_chosen": "high",
                            "score_rejected": 1}, "bad_score", "score_chosen"),
    ("chosen scored lower", {"prompt": "p", "chosen": "a", "rejected": "b", "score_chosen": 1,
                             "score_rejected": 2}, "bad_score", "score_chosen"),
    ("ranks do not match", {"prompt": "p", "responses": ["a", "b", "c"], "ranks": [1, 2]}, "bad_score", "ranks"),
    ("label not boolean", {"prompt": "p", "completion": "a", "label": "maybe"}, "bad_label", "label"),
    ("no ranks", {"query": "p", "responses": ["a", "b"]}, "missing_field", "scores"),
    ("no responses", {"prompt": "p", "rankings": [1, 2]}, "missing_field", "responses"),
]


@pytest.mark.parametrize("case, row, reason, field", LAYOUT_ERRORS, ids=[c[0] for c in LAYOUT_ERRORS])
def test_layout_specific_errors(tmp_path, capsys, case, row, reason, field):
    layout_of = {"messages": "vertex-chat", "score_chosen": "scored", "responses": "ranking", "rankings": "ranking",
                 "label": "unpaired", "chosen": "implicit"}
    layout = next(name for key, name in layout_of.items() if key in row)
    path = write_lines(tmp_path / "prefs.jsonl", [json.dumps(row)])
    code, _ = validate(tmp_path, preference_dataset=str(path), format=layout)
    output = capsys.readouterr().out
    assert code == 1 and f"{path}, line 1, field '{field}'" in output and reason in output


def test_an_implicit_answer_of_only_whitespace_is_rejected_on_the_users_row(tmp_path, capsys):
    """HH transcripts that split into a blank answer (as a few harmless-base rows do) fail here, not in training."""
    path = SAMPLES / "hh_implicit_whitespace.jsonl"
    code, _ = validate(tmp_path, preference_dataset=str(path))
    output = capsys.readouterr().out
    assert code == 1 and "2 of 6 rows are bad" in output and "2 empty_field" in output
    assert f"{path}, line 2, field 'chosen'" in output and f"{path}, line 4, field 'rejected'" in output
    code, out = validate(tmp_path, preference_dataset=str(path), max_bad_row_fraction=0.5)
    assert code == 0
    rejects = [json.loads(r) for r in (out / "preference_data" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"], r["field"], r["reason"]) for r in rejects] == [
        (str(path), 2, "chosen", "empty_field"), (str(path), 4, "rejected", "empty_field")]
    assert "only whitespace" in rejects[0]["detail"]
    books = books_of(out)
    assert (books["input_rows"], books["used"], books["rejected"], books["balanced"]) == (6, 4, 2, True)
    # What the trainers read: every pair passes their checks.
    pairs = read_canonical_rows(out / "preference_data" / "train.jsonl", PREFERENCE_FIELDS, "the test")
    assert len(pairs) == 4 and all(pair[field].strip() for pair in pairs for field in PREFERENCE_FIELDS)


def test_duplicates_are_removed_and_counted_and_leakage_reported(tmp_path, capsys):
    train = write_lines(tmp_path / "train.jsonl", good_rows(4) + good_rows(2))
    held = write_lines(tmp_path / "eval.jsonl", good_rows(1) + [json.dumps({**GOOD, "input_text": "new"})])
    code, out = validate(tmp_path, preference_dataset=str(train), eval_dataset=str(held))
    output = capsys.readouterr().out
    assert code == 0 and "leakage: 1 pairs are in both train and eval" in output
    books = books_of(out)
    assert (books["input_rows"], books["used"], books["duplicates"], books["balanced"]) == (6, 4, 2, True)
    accounting = json.loads((out / "preference_data" / "accounting.json").read_text())
    assert (accounting["train_rows"], accounting["eval_rows"], accounting["leaked_pairs"]) == (4, 2, 1)
    assert "pairs in both train and eval (leakage): 1" in (out / "preference_data_report.md").read_text()


def test_over_long_texts_are_dropped_by_setting_and_counted(tmp_path):
    long_prompt = json.dumps({**GOOD, "input_text": "word " * 400})
    long_answer = json.dumps({**GOOD, "candidate_1": "answer " * 100})
    path = write_lines(tmp_path / "prefs.jsonl", good_rows(3) + [long_prompt, long_answer])
    code, out = validate(tmp_path, preference_dataset=str(path), tokenizer=str(SAMPLES / "tokenizer"),
                         prompt_sequence_length=200, target_sequence_length=64, length_policy="drop")
    books = books_of(out)
    assert code == 0 and books["rejected_by_reason"] == {"prompt_too_long": 1, "answer_too_long": 1}
    assert books["used"] == 3 and books["balanced"]
    code, out = validate(tmp_path, preference_dataset=str(path), tokenizer=str(SAMPLES / "tokenizer"),
                         prompt_sequence_length=200, target_sequence_length=64)
    books = books_of(out)
    assert code == 0 and books["used"] == 5 and books["truncated"] == {"prompt": 1, "rejected": 1}


def test_a_dataset_that_is_all_too_long_is_not_usable(tmp_path, capsys):
    path = write_lines(tmp_path / "prefs.jsonl", good_rows(2))
    code, _ = validate(tmp_path, preference_dataset=str(path), tokenizer=str(SAMPLES / "tokenizer"),
                       prompt_sequence_length=3, length_policy="drop")
    assert code == 1 and "no usable rows remain: 2 prompt_too_long" in capsys.readouterr().out


def expect_unusable(tmp_path, capsys, path, *fragments, **options):
    code, _ = validate(tmp_path, preference_dataset=str(path), **options)
    output = capsys.readouterr().out
    assert code == 1
    for fragment in fragments:
        assert fragment in output, output
    return output


def test_an_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    expect_unusable(tmp_path, capsys, path, f"{path}: holds no rows")


def test_a_binary_file(tmp_path, capsys):
    path = tmp_path / "model.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    expect_unusable(tmp_path, capsys, path, f"{path}: this is a binary file")


def test_a_50_megabyte_single_line(tmp_path, capsys):
    path = tmp_path / "huge.jsonl"
    with open(path, "w") as handle:
        handle.write('{"input_text": "' + "x" * (50 * 1024 * 1024) + '", "candidate_0": "a", "candidate_1": "b"}')
    expect_unusable(tmp_path, capsys, path, f"{path}, line 1", "row_too_large")


def test_a_csv_with_wrong_headers(tmp_path, capsys):
    path = tmp_path / "prefs.csv"
    path.write_text("question,answer_a,answer_b,winner\nWhat?,this,that,a\n")
    output = expect_unusable(tmp_path, capsys, path, f"{path}, line 2", "question, winner", "match no known layout")
    assert "vertex-text: input_text, candidate_0, candidate_1, choice" in output
    assert "ranking: prompt (or query), responses (or completions), and ranks (or rankings) or scores" in output


def test_a_csv_row_with_too_many_cells(tmp_path, capsys):
    path = tmp_path / "prefs.csv"
    path.write_text("input_text,candidate_0,candidate_1,choice\nx,a,b,0\ny,a,b,1,extra\n")
    expect_unusable(tmp_path, capsys, path, f"{path}, line 3", "malformed_csv")


def test_a_missing_path(tmp_path, capsys):
    expect_unusable(tmp_path, capsys, tmp_path / "nope.jsonl", "nope.jsonl: no such file or directory")


def test_a_glob_that_matches_nothing(tmp_path, capsys):
    expect_unusable(tmp_path, capsys, tmp_path / "shard-*.jsonl", "no file matches this pattern")


def test_a_truncated_json_array(tmp_path, capsys):
    path = tmp_path / "prefs.json"
    path.write_text(json.dumps([GOOD, GOOD])[:-20])
    expect_unusable(tmp_path, capsys, path, f"{path}, row 1: malformed JSON")


def test_a_corrupt_gzip_and_parquet(tmp_path, capsys):
    compressed = tmp_path / "prefs.jsonl.gz"
    compressed.write_bytes(gzip.compress(b"\n".join(r.encode() for r in good_rows(50)))[:-40])
    expect_unusable(tmp_path, capsys, compressed, f"{compressed}: cannot be read")
    parquet = tmp_path / "prefs.parquet"
    parquet.write_text("input_text,candidate_0\n")
    expect_unusable(tmp_path, capsys, parquet, f"{parquet}: not a readable Parquet file")


def test_the_wrong_format_named(tmp_path, capsys):
    expect_unusable(tmp_path, capsys, SAMPLES / "explicit_preferences.jsonl", "12 of 12 rows are bad",
                    "field 'input_text'", format="vertex-text")


def test_gs_uris_read_from_the_vertex_mount(tmp_path, monkeypatch):
    bucket = tmp_path / "gcs" / "my-bucket" / "data"
    bucket.mkdir(parents=True)
    write_lines(bucket / "part-0.jsonl", good_rows(2))
    write_lines(bucket / "part-1.jsonl", good_rows(4)[2:])
    monkeypatch.setattr(gcs_paths, "GCS_FUSE_ROOT", tmp_path / "gcs")
    files = sources.resolve("gs://my-bucket/data/*.jsonl")
    assert [f.name for f in files] == ["gs://my-bucket/data/part-0.jsonl", "gs://my-bucket/data/part-1.jsonl"]
    code, out = validate(tmp_path, preference_dataset="gs://my-bucket/data")
    assert code == 0 and books_of(out)["used"] == 4


def test_a_usage_error_is_a_user_input_error(tmp_path):
    with pytest.raises(UserInputError, match="--preference-dataset and/or --prompt-dataset"):
        validate(tmp_path)
    with pytest.raises(UserInputError, match="unknown format"):
        validate(tmp_path, preference_dataset=str(SAMPLES / "explicit_preferences.jsonl"), format="tsv")


def run_command(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.commands.validate_data", *arguments], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=env)


def test_a_gs_uri_without_credentials_is_one_line_and_no_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))}
    env.update(CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), GCE_METADATA_HOST="127.0.0.1:9",
               GCE_METADATA_IP="127.0.0.1:9", NO_GCE_CHECK="True")
    result = run_command("--preference-dataset", "gs://no-such-bucket-for-tests/prefs.jsonl", env=env)
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    message = [line for line in result.stdout.splitlines() if "gs://no-such-bucket-for-tests/prefs.jsonl" in line]
    assert message and "cannot read from Cloud Storage" in message[0]


def test_the_command_in_a_subprocess_exits_by_usability(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", ["not json at all"])
    result = run_command("--preference-dataset", str(bad), "--prompt-dataset", str(SAMPLES / "explicit_prompts.jsonl"))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert f"preference dataset: NOT USABLE: {bad}: 1 of 1 rows are bad" in result.stdout
    assert "prompt dataset: usable" in result.stdout and "result: NOT USABLE" in result.stdout
    result = run_command("--preference-dataset", str(SAMPLES / "vertex_text_preferences.jsonl"))
    assert result.returncode == 0 and "format vertex-text" in result.stdout
