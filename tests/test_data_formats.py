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
    "query_preferences": ("explicit", 4, 4, 0, 0),  # `query` names the prompt
    "query_ranking_preferences": ("ranking", 2, 9, 0, 7),  # `rankings` (1 is best): 3 + 6 pairs
}
PROMPT_SAMPLES = {"vertex_text_prompts": ("vertex-text", 20), "explicit_prompts": ("prompt", 12),
                  "vertex_chat_prompts": ("vertex-chat", 4), "query_prompts": ("prompt", 5)}
PLAIN_TEXT_SAMPLES = ("vertex_text_preferences", "explicit_preferences", "scored_preferences", "ranking_preferences",
                      "ranking_scores_preferences", "unpaired_preferences", "query_preferences",
                      "query_ranking_preferences")


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
    bakery = [(p["chosen"], p["rejected"]) for p in jsonl_pairs["query_ranking_preferences"] if "bakery" in p["prompt"]]
    assert bakery == [("The Rolling Pin", "Bread"), ("Crumb & Crust", "Bread"), ("Crumb & Crust", "The Rolling Pin")]
    assert jsonl_pairs["query_preferences"][2] == {"prompt": "Translate 'good morning' into Spanish.\n",
                                                   "chosen": "Buenos días.", "rejected": "Bonjour."}
    messages = jsonl_pairs["explicit_messages_preferences"][1]
    assert messages["prompt"] == "Answer in one sentence.\n\nHuman: Name a prime number above 10.\n\nAssistant:"
    assert (messages["chosen"], messages["rejected"]) == (" 11 is the first one.", " 12.")
    # Every layout gives prompt + answer as one text that reads on: the implicit split loses nothing.
    source = read_jsonl(SAMPLES / "implicit_hh_preferences.jsonl")
    assert [p["prompt"] + p["chosen"] for p in jsonl_pairs["implicit_hh_preferences"]] == [r["chosen"] for r in source]


def turns(*messages: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in messages]


def test_chat_prompts_keep_their_messages_and_plain_prompts_have_none(jsonl_pairs):
    """`prompt_messages` is the conversation a chat template needs; `prompt` stays the HH transcript."""
    chat = jsonl_pairs["vertex_chat_preferences"]
    assert chat[1]["prompt_messages"] == turns(
        ("system", "You are a helpful travel agent."), ("user", "Which area should I stay in?"),
        ("assistant", "Baixa and Chiado are central."), ("user", "And something quieter?"))
    assert chat[2]["prompt_messages"] == turns(("user", "How do I say thank you in Portuguese?"))
    assert jsonl_pairs["explicit_messages_preferences"][1]["prompt_messages"] == turns(
        ("system", "Answer in one sentence."), ("user", "Name a prime number above 10."))
    hh = jsonl_pairs["implicit_hh_preferences"]
    assert hh[1]["prompt_messages"] == turns(
        ("user", "What's a good name for a grey cat?"), ("assistant", "Maybe Smokey or Ash?"),
        ("user", "Something less common?"))
    for name in ("vertex_chat_preferences", "explicit_messages_preferences", "implicit_hh_preferences"):
        assert all(p["prompt_messages"][-1]["role"] == "user" for p in jsonl_pairs[name])
    for name in PLAIN_TEXT_SAMPLES:
        assert all("prompt_messages" not in p for p in jsonl_pairs[name]), name


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


SYSTEM_AND_USER = turns(("system", "Be precise."), ("user", "What is 2 + 2?"))
CHAT_LAYOUTS = {
    "ranking": [{"prompt": SYSTEM_AND_USER, "responses": ["4", "5"], "ranks": [1, 2]}],
    "unpaired": [{"prompt": SYSTEM_AND_USER, "completion": "4", "label": True},
                 {"prompt": SYSTEM_AND_USER, "completion": "5", "label": False}],
    "implicit": [{"chosen": SYSTEM_AND_USER + turns(("assistant", "4")),
                  "rejected": SYSTEM_AND_USER + turns(("assistant", "5"))}],
    "explicit": [{"query": SYSTEM_AND_USER, "chosen": "4", "rejected": "5"}],
}


@pytest.mark.parametrize("layout", CHAT_LAYOUTS)
def test_every_chat_layout_gives_messages_with_the_instruction_in_the_first_user_message(tmp_path, layout):
    path = write_rows(tmp_path / f"{layout}.jsonl", CHAT_LAYOUTS[layout])
    code, out = validate(tmp_path, preference_dataset=str(path), instruction="Be kind.")
    assert code == 0
    [pair] = canonical_pairs(out / "preference_data")
    assert pair["prompt"] == "Be kind.\n\nBe precise.\n\nHuman: What is 2 + 2?\n\nAssistant:"
    assert pair["prompt_messages"] == turns(("system", "Be precise."), ("user", "Be kind.\n\nWhat is 2 + 2?"))
    assert (pair["chosen"], pair["rejected"]) == (" 4", " 5")


def test_an_hh_transcript_gives_messages_when_it_parses_cleanly(tmp_path):
    code, out = validate(tmp_path, preference_dataset=str(SAMPLES / "hh_implicit_whitespace.jsonl"),
                         instruction="Be kind.", max_bad_row_fraction=0.5)
    first = canonical_pairs(out / "preference_data")[0]
    assert code == 0 and first["prompt"].startswith("Be kind.\n\n\n\nHuman: My neighbour's dog barks all night.")
    assert first["prompt_messages"] == turns(
        ("user", "Be kind.\n\nMy neighbour's dog barks all night. What can I do?"),
        ("assistant", "That sounds exhausting. Have you talked to your neighbour about it yet?"),
        ("user", "Not yet, I'm worried it will turn into a fight."))
    untidy = [{"chosen": f"{prompt} {answer}", "rejected": f"{prompt} No."} for prompt, answer in (
        ("Notes first.\n\nHuman: Hi?\n\nAssistant:", "Hello!"),  # text before the first turn
        ("\n\nHuman: Hi.\n\nHuman: Anyone?\n\nAssistant:", "Yes, here."),  # turns that do not alternate
        ("\n\nHuman: Hi.\n\nAssistant:\n\nHuman: Hello?\n\nAssistant:", "Sorry!"))]  # an empty turn
    code, out = validate(tmp_path, preference_dataset=str(write_rows(tmp_path / "untidy.jsonl", untidy)))
    pairs = canonical_pairs(out / "preference_data")
    assert code == 0 and len(pairs) == 3 and all("prompt_messages" not in p for p in pairs)


def test_chat_prompt_rows_keep_their_messages(tmp_path):
    code, out = validate(tmp_path, prompt_dataset=str(SAMPLES / "vertex_chat_prompts.jsonl"), instruction="Be brief.")
    rows = canonical_pairs(out / "prompt_data")
    assert code == 0 and rows[0]["prompt_messages"] == turns(
        ("system", "You are a helpful travel agent."),
        ("user", "Be brief.\n\nWhat should I pack for Iceland in winter?"))
    hh_text = "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: What is 2 + 2?\n\nAssistant:"
    as_messages = write_rows(tmp_path / "prompts.jsonl", [{"prompt": SYSTEM_AND_USER}, {"prompt": "Plain text."},
                                                          {"query": hh_text}])
    code, out = validate(tmp_path, prompt_dataset=str(as_messages))
    rows = canonical_pairs(out / "prompt_data")
    assert code == 0 and rows == [
        {"prompt": "Be precise.\n\nHuman: What is 2 + 2?\n\nAssistant:", "prompt_messages": SYSTEM_AND_USER},
        {"prompt": "Plain text."},
        {"prompt": hh_text, "prompt_messages": turns(("user", "Hi?"), ("assistant", "Hello."), ("user", "What is 2 + 2?"))},
    ]
    code, out = validate(tmp_path, prompt_dataset=str(SAMPLES / "vertex_chat_preferences.jsonl"))  # prompts of pairs
    assert code == 0 and all(r["prompt_messages"][-1]["role"] == "user" for r in canonical_pairs(out / "prompt_data"))


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
