"""Every dataset layout, in every container, through `validate-data` and through the pipeline's stage.

The samples are JSONL files under tests/data_samples/; the other containers (.jsonl.gz, .json array,
.csv, .parquet, a directory of shards) are written from them here, and must give the same pairs.
"""

import csv
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow
import pyarrow.parquet
import pytest

from components.common.models import write_model_reference
from components.prepare_preference_data.component import prepare_preference_data
from components.prepare_prompt_data.component import prepare_prompt_data
from validate_data_calls import validate

SAMPLES = Path(__file__).parent / "data_samples"
CONTAINERS = ("jsonl", "jsonl.gz", "json", "csv", "parquet", "shards")

# sample -> (format detected, input rows, pairs used, rejected, pairs made by expansion)
PREFERENCE_SAMPLES = {
    "vertex_text_preferences": ("vertex-text", 24, 24, 0, 0),
    "vertex_chat_preferences": ("vertex-chat", 6, 6, 0, 0),
    "explicit_preferences": ("explicit", 12, 12, 0, 0),
    "explicit_messages_preferences": ("explicit", 5, 5, 0, 0),
    "implicit_hh_preferences": ("implicit", 5, 5, 0, 0),
    "scored_preferences": ("scored", 4, 4, 0, 0),
    "ranking_preferences": ("ranking", 3, 8, 1, 6),  # 3 + 5 pairs (one tie), one row all tied
    "ranking_scores_preferences": ("ranking", 2, 4, 0, 2),
    "unpaired_preferences": ("unpaired", 7, 4, 1, -2),  # 1x2 + 2x1 pairs from 6 rows, one row alone
}
PROMPT_SAMPLES = {"vertex_text_prompts": ("vertex-text", 20), "explicit_prompts": ("prompt", 12),
                  "vertex_chat_prompts": ("vertex-chat", 4)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def write_container(rows: list[dict], container: str, directory: Path, name: str) -> Path:
    """The rows in `container`; "shards" is a directory of three JSONL files."""
    directory.mkdir(parents=True, exist_ok=True)
    if container == "shards":
        shards = directory / f"{name}_shards"
        shards.mkdir()
        for index in range(3):
            part = rows[index::3]
            (shards / f"part-{index}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        return shards
    path = directory / f"{name}.{container}"
    if container == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif container == "jsonl.gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif container == "json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    elif container == "csv":
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([_csv_cell(row.get(c)) for c in columns] for row in rows)
    elif container == "parquet":
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    return path


def canonical_pairs(directory: Path) -> list[dict]:
    return read_jsonl(directory / "train.jsonl") + read_jsonl(directory / "eval.jsonl")


@pytest.fixture(scope="module")
def jsonl_pairs(tmp_path_factory) -> dict[str, list[dict]]:
    """The canonical pairs of each sample read as JSONL: what every other container must give."""
    result = {}
    for name in PREFERENCE_SAMPLES:
        code, out = validate(tmp_path_factory.mktemp(name), preference_dataset=str(SAMPLES / f"{name}.jsonl"))
        assert code == 0
        result[name] = canonical_pairs(out / "preference_data")
    return result


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("name", PREFERENCE_SAMPLES)
def test_preference_layouts_in_every_container(tmp_path, name, container, jsonl_pairs, capsys):
    layout, rows, used, rejected, expansion = PREFERENCE_SAMPLES[name]
    path = write_container(read_jsonl(SAMPLES / f"{name}.jsonl"), container, tmp_path / "in", name)
    code, out = validate(tmp_path, preference_dataset=str(path))
    assert code == 0, capsys.readouterr().out
    books = json.loads((out / "preference_data" / "accounting.json").read_text())["datasets"][0]
    assert (books["format"], books["input_rows"], books["used"], books["rejected"]) == (layout, rows, used, rejected)
    assert books["pairs_made_by_expansion"] == expansion and books["balanced"]
    pairs = canonical_pairs(out / "preference_data")
    if container == "shards":  # shards interleave the rows: the same pairs, in another order
        key = lambda p: json.dumps(p, sort_keys=True)  # noqa: E731
        assert sorted(pairs, key=key) == sorted(jsonl_pairs[name], key=key)
    else:
        assert pairs == jsonl_pairs[name]
    assert len(read_jsonl(out / "preference_data" / "rejects.jsonl")) == rejected
    assert f"format {layout}" in capsys.readouterr().out


def test_layouts_turn_into_the_expected_pairs(jsonl_pairs):
    ranking = jsonl_pairs["ranking_preferences"]
    moon = [(p["chosen"][:8], p["rejected"][:8]) for p in ranking if p["prompt"].startswith("Describe")]
    assert moon == [("The moon", "A rock i"), ("The moon", "The moon"), ("A rock i", "The moon")]
    assert len([p for p in ranking if p["prompt"].startswith("What is 7")]) == 5  # 6 pairs less the tie
    assert [p["margin"] for p in jsonl_pairs["scored_preferences"]] == [5.5, 2.0, 0.0, 6.5]
    assert jsonl_pairs["ranking_scores_preferences"][0]["margin"] == pytest.approx(0.7)
    assert all("margin" not in p for p in jsonl_pairs["vertex_text_preferences"])
    unpaired = jsonl_pairs["unpaired_preferences"]
    assert {(p["chosen"], p["rejected"]) for p in unpaired if p["prompt"].startswith("Suggest")} == {
        ("A lentil curry with rice: cheap, filling and ready in 30 minutes.", "Food."),
        ("A lentil curry with rice: cheap, filling and ready in 30 minutes.", "Whatever.")}
    hh = jsonl_pairs["implicit_hh_preferences"][1]
    assert hh["prompt"].endswith("\n\nHuman: Something less common?\n\nAssistant:")
    assert hh["chosen"] == " How about Pewter, Nimbus or Graphite?" and hh["rejected"] == " Cat."
    chat = jsonl_pairs["vertex_chat_preferences"][1]
    assert chat["prompt"] == ("You are a helpful travel agent.\n\nHuman: Which area should I stay in?\n\nAssistant: "
                              "Baixa and Chiado are central.\n\nHuman: And something quieter?\n\nAssistant:")
    assert chat["chosen"].startswith(" Try Campo de Ourique")  # choice 1
    messages = jsonl_pairs["explicit_messages_preferences"][1]
    assert messages["prompt"] == "Answer in one sentence.\n\nHuman: Name a prime number above 10.\n\nAssistant:"
    assert (messages["chosen"], messages["rejected"]) == (" 11 is the first one.", " 12.")
    # Every layout gives prompt + answer as one text that reads on: the implicit split loses nothing.
    source = read_jsonl(SAMPLES / "implicit_hh_preferences.jsonl")
    assert [p["prompt"] + p["chosen"] for p in jsonl_pairs["implicit_hh_preferences"]] == [r["chosen"] for r in source]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("name", PROMPT_SAMPLES)
def test_prompt_layouts_in_every_container(tmp_path, name, container):
    layout, rows = PROMPT_SAMPLES[name]
    path = write_container(read_jsonl(SAMPLES / f"{name}.jsonl"), container, tmp_path / "in", name)
    code, out = validate(tmp_path, prompt_dataset=str(path), instruction="Be brief.")
    assert code == 0
    books = json.loads((out / "prompt_data" / "accounting.json").read_text())["datasets"][0]
    assert (books["format"], books["input_rows"], books["used"], books["balanced"]) == (layout, rows, rows, True)
    prompts = canonical_pairs(out / "prompt_data")
    assert len(prompts) == rows and all(p["prompt"].startswith("Be brief.\n\n") for p in prompts)
    if name == "vertex_chat_prompts":
        assert {p["prompt"] for p in prompts} >= {
            "Be brief.\n\nHuman: I feel tired every afternoon.\n\nAssistant: Do you sleep well at night?"
            "\n\nHuman: About six hours.\n\nAssistant:"}


@pytest.mark.parametrize("name", PREFERENCE_SAMPLES)
def test_every_layout_goes_through_the_pipeline_stages(tmp_path, name):
    """The component bodies the pipeline runs, with the preference sample as eval_dataset of the prompt stage."""
    layout, _, used, _, _ = PREFERENCE_SAMPLES[name]
    base_model = tmp_path / "base_model"
    write_model_reference(base_model, str(SAMPLES / "tokenizer"), "test tokenizer")
    model = SimpleNamespace(path=str(base_model))
    dataset = write_container(read_jsonl(SAMPLES / f"{name}.jsonl"), "parquet", tmp_path / "in", name)
    data, report = tmp_path / "pref", tmp_path / "pref.md"
    outputs = prepare_preference_data(
        str(dataset), "", "", 512, 64, 2, 1, 0, 0.2, 0, "test", model,
        SimpleNamespace(path=str(data)), SimpleNamespace(path=str(report)))
    assert outputs.train_rows + outputs.eval_rows == used and outputs.train_rows > 0
    assert layout in report.read_text()
    prompts = tmp_path / "prompts"
    outputs = prepare_prompt_data(
        str(SAMPLES / "explicit_prompts.jsonl"), str(dataset), "", 512, 2, 1, 0, 0.2, 200, 0, "test", model,
        SimpleNamespace(path=str(prompts)), SimpleNamespace(path=str(tmp_path / "prompts.md")))
    pair_prompts = {p["prompt"] for p in canonical_pairs(data)}
    assert outputs.train_rows == 12 and {p["prompt"] for p in read_jsonl(prompts / "eval.jsonl")} == pair_prompts
