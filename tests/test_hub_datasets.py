"""Hugging Face datasets as dataset arguments: `hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]` and folders of
`save_to_disk`, read offline from a temporary datasets cache, through the data stages' own checks and books."""

import json
import os
import shutil
from pathlib import Path

import pytest

from components.common.data.loading import PREFERENCE, PROMPT, DataSettings, load_dataset
from components.common.errors import UserInputError
from components.prepare_preference_data import stage as preference_stage
from components.prepare_prompt_data import stage as prompt_stage
from components.supervised_fine_tuning.data import read_sft_dataset
from cli.fingerprint import dataset_entries

REVISION, NEWER_REVISION = "1" * 40, "2" * 40
PAIRS = [{"prompt": f"post {i} [summary]: ", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
PAIRS[4] = {**PAIRS[4], "rejected": "   "}  # one bad row: its rejected answer is only whitespace
PROMPTS = [{"prompt": f"prompt {i} [summary]: "} for i in range(10)]
PROMPTS[7] = {"prompt": "  "}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def datasets_cache(tmp_path, monkeypatch) -> Path:
    """An empty datasets cache under a temporary HF_HOME, in offline mode (HF_DATASETS_OFFLINE=1).

    `datasets` reads HF_HOME and HF_DATASETS_OFFLINE when it is imported (tests import it before this
    runs), so the values it derived from them are set where it keeps them."""
    import datasets
    from huggingface_hub import constants

    cache = tmp_path / "hf-home" / "datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def cache_hub_dataset(cache: Path, repo_id: str, splits: dict[str, list[dict]], revision: str = REVISION) -> None:
    """Leave in `cache` what `datasets.load_dataset(repo_id)` leaves there after downloading the revision:
    the prepared arrow files and dataset_info.json in OWNER___NAME/default/0.0.0/REVISION. Offline,
    `datasets` reads this cache only (not the hub's snapshot cache that `hf download` fills)."""
    from datasets.packaged_modules.json.json import Json

    owner, name = repo_id.split("/")
    work = cache.parent / "build" / revision
    files = {split: str(write_jsonl(work / "files" / f"{split}.jsonl", rows)) for split, rows in splits.items()}
    builder = Json(cache_dir=str(work / "cache"), dataset_name=name, data_files=files)
    builder.download_and_prepare()
    target = cache / f"{owner}___{name}" / "default" / "0.0.0" / revision
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(builder.cache_dir, target)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_preference_stage(dataset: str, output: Path):
    config = preference_stage.PreferenceDataConfig(preference_dataset=dataset, max_bad_row_fraction=0.2,
                                                   eval_split_fraction=0.25)
    preference_stage.run(config, None, output / "data", output / "report.md")
    return output / "data"


def run_prompt_stage(dataset: str, output: Path):
    config = prompt_stage.PromptDataConfig(prompt_dataset=dataset, max_bad_row_fraction=0.2, eval_split_fraction=0.2)
    prompt_stage.run(config, None, output / "data", output / "report.md")
    return output / "data"


def without_place(rejects: list[dict]) -> list[dict]:
    return [{k: v for k, v in reject.items() if k not in ("file", "line", "row")} for reject in rejects]


@pytest.mark.parametrize("run_stage, rows, bad_index", [(run_preference_stage, PAIRS, 4),
                                                        (run_prompt_stage, PROMPTS, 7)])
def test_a_hub_dataset_goes_through_the_stage_as_the_same_rows_in_a_file_do(tmp_path, datasets_cache, run_stage,
                                                                            rows, bad_index):
    cache_hub_dataset(datasets_cache, "acme/rows", {"train": rows, "test": rows[:3]})
    from_hub = run_stage("hf://datasets/acme/rows", tmp_path / "hub")
    from_file = run_stage(str(write_jsonl(tmp_path / "rows.jsonl", rows)), tmp_path / "file")

    rejects = read_jsonl(from_hub / "rejects.jsonl")
    assert [(r["file"], r["row"]) for r in rejects] == [("hf://datasets/acme/rows@train", bad_index)]
    file_rejects = read_jsonl(from_file / "rejects.jsonl")
    assert [r["line"] for r in file_rejects] == [bad_index + 1]
    assert without_place(rejects) == without_place(file_rejects)
    for name in ("train.jsonl", "eval.jsonl"):
        assert (from_hub / name).read_text() == (from_file / name).read_text()
    books = json.loads((from_hub / "accounting.json").read_text())["datasets"][0]
    assert (books["source"], books["files"]) == ("hf://datasets/acme/rows", ["hf://datasets/acme/rows@train"])
    assert (books["input_rows"], books["used"], books["rejected"], books["balanced"]) == (len(rows), len(rows) - 1,
                                                                                         1, True)


def test_a_split_and_a_config_are_named_in_the_id(datasets_cache):
    cache_hub_dataset(datasets_cache, "acme/prefs", {"train": PAIRS, "test": PAIRS[:3]})
    loaded = load_dataset("hf://datasets/acme/prefs:default@test", PREFERENCE, DataSettings())
    assert [pair.chosen for pair in loaded.examples] == ["good 0", "good 1", "good 2"]
    assert loaded.ledger.files == ["hf://datasets/acme/prefs:default@test"]


@pytest.mark.parametrize("spec", ["hf://datasets/acme", "hf://acme/prefs", "hf://datasets/acme/prefs@",
                                  "hf://datasets/acme/prefs/data/train.jsonl", "hf://datasets/acme/prefs:@test",
                                  "hf://datasets/acme/prefs@train[:10]"])
def test_a_malformed_id_is_one_clear_error(datasets_cache, spec):
    with pytest.raises(UserInputError) as error:
        load_dataset(spec, PREFERENCE, DataSettings())
    assert str(error.value) == (f"{spec}: not a Hugging Face dataset id; expected "
                                "hf://datasets/OWNER/NAME[:CONFIG][@SPLIT] (the split defaults to train), e.g. "
                                "hf://datasets/Anthropic/hh-rlhf@test")


def test_a_dataset_neither_cached_nor_reachable_says_how_to_get_it(datasets_cache):
    with pytest.raises(UserInputError) as error:
        load_dataset("hf://datasets/acme/elsewhere:en", PROMPT, DataSettings())
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"hf://datasets/acme/elsewhere:en@train: not in the local datasets cache "
                              f"({datasets_cache}) and the Hugging Face hub cannot be reached (offline mode is on "
                              "(HF_DATASETS_OFFLINE or HF_HUB_OFFLINE)); load it once where the hub is reachable")
    assert "datasets.load_dataset('acme/elsewhere', 'en')" in message


def test_an_unknown_split_or_config_lists_the_ones_there_are(datasets_cache):
    cache_hub_dataset(datasets_cache, "acme/prefs", {"train": PAIRS, "test": PAIRS[:3]})
    with pytest.raises(UserInputError, match=r"^hf://datasets/acme/prefs@validation: the dataset has no split "
                                             r"'validation'; its splits are train, test \(name one as "
                                             r"hf://datasets/acme/prefs@SPLIT\)$"):
        load_dataset("hf://datasets/acme/prefs@validation", PREFERENCE, DataSettings())
    with pytest.raises(UserInputError) as error:
        load_dataset("hf://datasets/acme/prefs:nosuch", PREFERENCE, DataSettings())
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("hf://datasets/acme/prefs:nosuch@train: ")
    assert "'nosuch'" in str(error.value) and "Available configs in the cache: ['default']" in str(error.value)


def test_sft_rows_from_the_hub_keep_their_books(datasets_cache):
    rows = [{"prompt": f"question {i}?", "completion": f" answer {i}"} for i in range(5)] + [{"prompt": "q?",
                                                                                             "completion": None}]
    cache_hub_dataset(datasets_cache, "acme/sft", {"train": rows})
    data = read_sft_dataset("hf://datasets/acme/sft", "", max_bad_row_fraction=0.5)
    assert [example.completion for example in data.examples] == [f" answer {i}" for i in range(5)]
    assert [(r.ref.file, r.ref.row, r.field) for r in data.ledger.rejects] == [("hf://datasets/acme/sft@train", 5,
                                                                                "completion")]


def test_a_folder_of_save_to_disk_is_read_as_a_dataset_not_as_its_json_files(tmp_path):
    import datasets

    datasets.Dataset.from_list(PAIRS).save_to_disk(str(tmp_path / "saved"))
    loaded = load_dataset(str(tmp_path / "saved"), PREFERENCE, DataSettings(max_bad_row_fraction=0.2))
    assert len(loaded.examples) == len(PAIRS) - 1
    assert [(r.ref.file, r.ref.row, r.field) for r in loaded.ledger.rejects] == [(str(tmp_path / "saved"), 4,
                                                                                  "rejected")]


def test_a_saved_dataset_dict_gives_its_train_split_or_names_its_split_folders(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(PROMPTS[:3]),
                          "test": datasets.Dataset.from_list(PROMPTS[3:5])}).save_to_disk(str(tmp_path / "dict"))
    loaded = load_dataset(str(tmp_path / "dict"), PROMPT, DataSettings())
    assert [row.prompt for row in loaded.examples] == [row["prompt"] for row in PROMPTS[:3]]
    assert loaded.ledger.files == [str(tmp_path / "dict" / "train")]
    assert len(load_dataset(str(tmp_path / "dict" / "test"), PROMPT, DataSettings()).examples) == 2
    datasets.DatasetDict({"test": datasets.Dataset.from_list(PROMPTS[3:5]),
                          "dev": datasets.Dataset.from_list(PROMPTS[5:])}).save_to_disk(str(tmp_path / "no-train"))
    with pytest.raises(UserInputError) as error:
        load_dataset(str(tmp_path / "no-train"), PROMPT, DataSettings())
    folder = tmp_path / "no-train"
    assert str(error.value) == (f"{folder}: a DatasetDict saved by save_to_disk without a 'train' split; give the "
                                f"folder of one of its splits: {folder / 'test'}, {folder / 'dev'}")


def test_the_fingerprint_of_a_hub_dataset_follows_its_split_and_its_cached_revision(datasets_cache):
    cache_hub_dataset(datasets_cache, "acme/prefs", {"train": PAIRS, "test": PAIRS[:3]})
    train, test = dataset_entries("hf://datasets/acme/prefs"), dataset_entries("hf://datasets/acme/prefs@test")
    assert [entry["dataset"] for entry in train + test] == ["hf://datasets/acme/prefs@train",
                                                            "hf://datasets/acme/prefs@test"]
    assert train[0]["fingerprint"] != test[0]["fingerprint"]
    assert dataset_entries("hf://datasets/acme/prefs@train") == train
    os.utime(datasets_cache / "acme___prefs" / "default" / "0.0.0" / REVISION, (0, 0))  # downloaded long ago
    cache_hub_dataset(datasets_cache, "acme/prefs", {"train": PAIRS[1:]}, revision=NEWER_REVISION)
    assert dataset_entries("hf://datasets/acme/prefs")[0]["fingerprint"] != train[0]["fingerprint"]


def test_the_fingerprint_of_a_saved_folder_covers_its_arrow_files(tmp_path):
    import datasets

    datasets.Dataset.from_list(PROMPTS).save_to_disk(str(tmp_path / "saved"))
    entries = dataset_entries(str(tmp_path / "saved"))
    assert any(entry["file"].endswith(".arrow") for entry in entries)
    datasets.Dataset.from_list(PROMPTS[1:]).save_to_disk(str(tmp_path / "saved"))
    assert dataset_entries(str(tmp_path / "saved")) != entries


def test_the_checks_before_a_run_or_a_submission_read_a_hub_dataset(tmp_path, datasets_cache):
    from cli.preflight import PreflightResult
    from cli.preflight import check_datasets as check_before_run
    from cli.submission.datasets import check_datasets as check_before_submission

    cache_hub_dataset(datasets_cache, "acme/prefs", {"train": PAIRS})
    cache_hub_dataset(datasets_cache, "acme/prompts", {"train": PROMPTS})
    values = {"preference_dataset": "hf://datasets/acme/prefs", "prompt_dataset": "hf://datasets/acme/prompts",
              "max_bad_row_fraction": 0.2}
    from_hub, from_files = PreflightResult(), PreflightResult()
    check_before_run(values, from_hub)
    check_before_run({**values, "preference_dataset": str(write_jsonl(tmp_path / "prefs.jsonl", PAIRS)),
                      "prompt_dataset": str(write_jsonl(tmp_path / "prompts.jsonl", PROMPTS))}, from_files)
    assert from_hub.checked == from_files.checked
    assert from_hub.checked == ["checked preference_dataset: 10 train + 1 eval pairs (12 rows read, 1 rejected)",
                                "checked prompt_dataset: 8 train + 1 eval prompts (10 rows read, 1 rejected)"]
    lines = []
    check_before_submission(values, report=lines.append)
    assert lines == [
        "checked preference_dataset: 11 usable preference rows of 12 (a Hugging Face dataset: the job loads it "
        "where it runs, which must reach the hub)",
        "checked prompt_dataset: 9 usable prompt rows of 10 (a Hugging Face dataset: the job loads it where it "
        "runs, which must reach the hub)",
    ]
    with pytest.raises(UserInputError, match=r"^prompt_dataset: hf://datasets/acme/nothing@train: not in the local "):
        check_before_submission({**values, "prompt_dataset": "hf://datasets/acme/nothing"}, report=lines.append)
