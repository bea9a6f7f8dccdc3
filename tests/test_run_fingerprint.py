"""The data stages' cache sees the data: fingerprints of local files and gs:// objects."""

import os
import types

import pytest

from components.common.errors import UserInputError
from cli.fingerprint import data_fingerprints, dataset_entries, fingerprint


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_an_edit_in_place_changes_the_fingerprint(tmp_path):
    data = write(tmp_path / "prefs.jsonl", '{"a": 1}\n{"a": 2}\n')
    before = fingerprint([str(data)])
    stat = data.stat()
    data.write_text('{"a": 1}\n{"a": 3}\n')  # same size...
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...and same modification time
    assert data.stat().st_size == stat.st_size and data.stat().st_mtime_ns == stat.st_mtime_ns
    assert fingerprint([str(data)]) != before


def test_touching_a_file_with_the_same_bytes_keeps_the_fingerprint(tmp_path):
    """The stage's output depends on the bytes only: a touch, a copy back or a fresh checkout that keeps
    them keeps the cached stage (the modification time is not part of the fingerprint)."""
    data = write(tmp_path / "prefs.jsonl", '{"a": 1}\n')
    before = fingerprint([str(data)])
    os.utime(data, ns=(1_000_000_000, 1_000_000_000))
    assert fingerprint([str(data)]) == before
    data.write_text('{"a": 1}\n')  # rewritten with the same bytes
    assert fingerprint([str(data)]) == before


def test_a_new_shard_under_a_directory_or_glob_changes_the_fingerprint(tmp_path):
    write(tmp_path / "shards" / "part-0.jsonl", "{}\n")
    write(tmp_path / "shards" / "notes.txt", "not data: the stages skip it")
    by_dir, by_glob = fingerprint([str(tmp_path / "shards")]), fingerprint([str(tmp_path / "shards" / "*.jsonl")])
    assert [e["file"] for e in dataset_entries(str(tmp_path / "shards"))] == [str(tmp_path / "shards" / "part-0.jsonl")]
    write(tmp_path / "shards" / "notes.txt", "edited, still not data")
    assert fingerprint([str(tmp_path / "shards")]) == by_dir
    write(tmp_path / "shards" / "part-1.jsonl", "{}\n")
    assert fingerprint([str(tmp_path / "shards")]) != by_dir
    assert fingerprint([str(tmp_path / "shards" / "*.jsonl")]) != by_glob


def test_each_data_stage_fingerprints_its_own_datasets_and_the_eval_dataset(tmp_path):
    values = {"preference_dataset": str(write(tmp_path / "p.jsonl", "p\n")),
              "prompt_dataset": str(write(tmp_path / "q.jsonl", "q\n")),
              "eval_dataset": str(write(tmp_path / "e.jsonl", "e\n"))}
    before = data_fingerprints(values)
    write(tmp_path / "q.jsonl", "q2\n")
    after = data_fingerprints(values)
    assert after["preference_data_fingerprint"] == before["preference_data_fingerprint"]
    assert after["prompt_data_fingerprint"] != before["prompt_data_fingerprint"]
    write(tmp_path / "e.jsonl", "e2\n")
    edited = data_fingerprints(values)
    for name in ("preference_data_fingerprint", "prompt_data_fingerprint"):
        assert edited[name] != after[name]
    assert edited["sft_data_fingerprint"] == after["sft_data_fingerprint"]  # the SFT step does not read eval data
    assert data_fingerprints({**values, "eval_dataset": None})["preference_data_fingerprint"] != \
        after["preference_data_fingerprint"]


def test_the_sft_fingerprint_covers_its_file_and_not_the_pairs_it_may_name(tmp_path):
    sft = write(tmp_path / "sft.jsonl", "s\n")
    before = data_fingerprints({"sft_dataset": str(sft)})["sft_data_fingerprint"]
    write(tmp_path / "sft.jsonl", "s2\n")
    assert data_fingerprints({"sft_dataset": str(sft)})["sft_data_fingerprint"] != before
    # `preference:chosen` names the prepared pairs, whose own step's fingerprint covers them
    chosen = data_fingerprints({"sft_dataset": "preference:chosen"})["sft_data_fingerprint"]
    assert chosen == data_fingerprints({})["sft_data_fingerprint"]


class FakeBucket:
    def __init__(self, objects):
        self.objects = objects

    def get_blob(self, name):
        return self.objects.get(name)


class FakeStorage:
    """The two calls of google-cloud-storage's Client that fingerprints make."""

    def __init__(self, objects, fail=None):
        self.objects, self.fail = objects, fail

    def _blobs(self):
        return {name: types.SimpleNamespace(name=name, generation=generation, size=size)
                for name, (generation, size) in self.objects.items()}

    def list_blobs(self, bucket, prefix=""):
        if self.fail:
            raise self.fail
        return [blob for name, blob in sorted(self._blobs().items()) if name.startswith(prefix)]

    def bucket(self, name):
        return FakeBucket(self._blobs())


def test_gs_objects_are_fingerprinted_by_generation_without_downloading():
    storage = FakeStorage({"data/part-0.jsonl": (1700000000000001, 10), "data/part-1.jsonl": (1700000000000002, 20),
                           "data/readme.md": (5, 1)})
    by_glob = fingerprint(["gs://bucket/data/*.jsonl"], storage)
    by_prefix = fingerprint(["gs://bucket/data"], storage)
    one = fingerprint(["gs://bucket/data/part-0.jsonl"], storage)
    assert [e["object"] for e in dataset_entries("gs://bucket/data", storage)] == [
        "gs://bucket/data/part-0.jsonl", "gs://bucket/data/part-1.jsonl"]
    # an upload gives the object a new generation, even with the same bytes: the stage reruns
    storage.objects["data/part-0.jsonl"] = (1700000000000009, 10)
    assert fingerprint(["gs://bucket/data/*.jsonl"], storage) != by_glob
    assert fingerprint(["gs://bucket/data"], storage) != by_prefix
    assert fingerprint(["gs://bucket/data/part-0.jsonl"], storage) != one


def test_gs_objects_that_cannot_be_listed_are_a_clear_error():
    with pytest.raises(UserInputError, match=r"gs://bucket/data/\*\.jsonl: cannot list the objects to fingerprint "
                                             r"them for the cache \(403 Forbidden\)"):
        fingerprint(["gs://bucket/data/*.jsonl"], FakeStorage({}, fail=PermissionError("403 Forbidden")))
    with pytest.raises(UserInputError, match="no object to fingerprint"):
        fingerprint(["gs://bucket/nothing/*.jsonl"], FakeStorage({}))


def test_gs_without_credentials_names_the_fix(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith(("GOOGLE_", "CLOUDSDK_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(UserInputError, match="gs://bucket/prefs.jsonl: cannot list the objects .*gcloud auth"):
        fingerprint(["gs://bucket/prefs.jsonl"])


def test_submit_fills_in_the_fingerprints_after_the_data_check(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO_ROOT
    from fakes.templates import compile_rlhf_template

    template = compile_rlhf_template(tmp_path)
    pair = {"input_text": "a post [summary]: ", "candidate_0": "good", "candidate_1": "bad", "choice": 0}
    values = {"preference_dataset": str(write(tmp_path / "p.jsonl", "".join(
                  json.dumps({**pair, "input_text": f"post {i}"}) + "\n" for i in range(10)))),
              "prompt_dataset": str(write(tmp_path / "q.jsonl", "".join(
                  json.dumps({"input_text": f"prompt {i}"}) + "\n" for i in range(10)))),
              "large_model_reference": "llama-2-7b"}
    (tmp_path / "params.json").write_text(json.dumps(values))

    def dry_run(*extra):
        result = subprocess.run([sys.executable, "-m", "cli", "submit", "--target", "kfp", "--host",
                                 "http://127.0.0.1:9", "--template", str(template), "--params",
                                 str(tmp_path / "params.json"), "--dry-run", *extra],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["run"]["runtime_config"]["parameters"]

    sent = dry_run()
    assert {k: sent[k] for k in data_fingerprints(values)} == data_fingerprints(values)
    assert not set(data_fingerprints(values)) & set(dry_run("--skip-data-check"))
