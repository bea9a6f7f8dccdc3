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
from cli.commands import validate_data
from components.prepare_preference_data.component import prepare_preference_data
from components.prepare_prompt_data.component import prepare_prompt_data
from stage_calls import call_stage
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
                  "vertex_chat_prompts": ("vertex-chat", 4), "query_prompts": ("prompt", 5),
                  "gsm8k_prompts": ("gsm8k", 6)}
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
    outputs = call_stage(
        prepare_preference_data, preference_dataset=str(dataset), eval_dataset="", instruction="", batch_size=2,
        eval_split_fraction=0.2, code_version="test", base_model=model, preference_data=SimpleNamespace(path=str(data)),
        data_report=SimpleNamespace(path=str(report)))
    assert outputs.train_rows + outputs.eval_rows == used and outputs.train_rows > 0
    assert layout in report.read_text()
    prompts = tmp_path / "prompts"
    outputs = call_stage(
        prepare_prompt_data, prompt_dataset=str(SAMPLES / "explicit_prompts.jsonl"), eval_dataset=str(dataset),
        instruction="", batch_size=2, eval_split_fraction=0.2, code_version="test", base_model=model,
        prompt_data=SimpleNamespace(path=str(prompts)), data_report=SimpleNamespace(path=str(tmp_path / "prompts.md")))
    pair_prompts = {p["prompt"] for p in canonical_pairs(data)}
    assert outputs.train_rows == 12 and {p["prompt"] for p in read_jsonl(prompts / "eval.jsonl")} == pair_prompts


GSM8K_TRUTHS = ["21", "60", "1200", "72", "15", "11.75"]


def test_gsm8k_rows_become_a_user_message_with_the_final_number_as_ground_truth(tmp_path):
    code, out = validate(tmp_path, prompt_dataset=str(SAMPLES / "gsm8k_prompts.jsonl"))
    rows, source = canonical_pairs(out / "prompt_data"), read_jsonl(SAMPLES / "gsm8k_prompts.jsonl")
    assert code == 0 and rows[0] == {
        "prompt": f"Human: {source[0]['question']}\n\nAssistant:",
        "prompt_messages": turns(("user", source[0]["question"])),
        "columns": {"answer": source[0]["answer"], "ground_truth": "21"}}  # the answer stays a column
    assert [r["columns"]["ground_truth"] for r in rows] == GSM8K_TRUTHS  # "#### 1,200" gives "1200"
    report = (out / "prompt_data_report.md").read_text()
    assert "## Columns for a reward function" in report and "- `ground_truth`: 6 of 6 prompts" in report


@pytest.mark.parametrize("container", CONTAINERS)
def test_gsm8k_rows_give_the_same_prompts_and_columns_in_every_container(tmp_path, container):
    _, out = validate(tmp_path / "jsonl", prompt_dataset=str(SAMPLES / "gsm8k_prompts.jsonl"))
    path = write_container(read_jsonl(SAMPLES / "gsm8k_prompts.jsonl"), container, tmp_path / "in", "gsm8k")
    code, out_of_container = validate(tmp_path, prompt_dataset=str(path))
    key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731  (shards interleave the rows)
    assert code == 0 and sorted(canonical_pairs(out_of_container / "prompt_data"), key=key) == sorted(
        canonical_pairs(out / "prompt_data"), key=key)


def test_prompts_with_a_ground_truth_keep_it_and_every_other_column(tmp_path):
    code, out = validate(tmp_path, prompt_dataset=str(SAMPLES / "ground_truth_prompts.jsonl"), instruction="Be exact.")
    rows = canonical_pairs(out / "prompt_data")
    assert code == 0 and rows[0] == {"prompt": "Be exact.\n\nWhat is 7 * 8? Put the final answer in \\boxed{}.",
                                     "columns": {"ground_truth": "56", "id": "arith-1"}}
    assert rows[2]["prompt_messages"] == turns(
        ("system", "Reason step by step, then give the answer in \\boxed{}."),
        ("user", "Be exact.\n\nHow many minutes are in 3 hours?"))
    assert rows[2]["columns"] == {"ground_truth": 180, "id": "time-1", "difficulty": 1}  # kept as given
    assert rows[3]["columns"]["tags"] == ["geography", "capitals"]
    assert rows[4]["columns"] == {"ground_truth": "5000", "id": "arith-3"}  # `query` is the prompt, not a column
    report = (out / "prompt_data_report.md").read_text()
    assert "- `ground_truth`: 5 of 5 prompts" in report and "- `difficulty`: 1 of 5 prompts" in report
    # CSV has only text: the same columns, their values as written in the cells; an empty cell is no value
    code, out = validate(tmp_path, prompt_dataset=str(write_container(
        read_jsonl(SAMPLES / "ground_truth_prompts.jsonl"), "csv", tmp_path / "in", "ground_truth")))
    csv_rows = canonical_pairs(out / "prompt_data")
    assert code == 0 and csv_rows[2]["columns"] == {"ground_truth": "180", "id": "time-1", "difficulty": "1"}
    assert csv_rows[0]["columns"] == {"ground_truth": "56", "id": "arith-1"}


def test_plain_prompts_have_no_columns_and_nulls_are_left_out(tmp_path):
    path = write_rows(tmp_path / "prompts.jsonl", [{"prompt": "Hi?"}, {"prompt": "Bye?", "ground_truth": None,
                                                                        "source": None}])
    code, out = validate(tmp_path, prompt_dataset=str(path))
    assert code == 0 and canonical_pairs(out / "prompt_data") == [{"prompt": "Hi?"}, {"prompt": "Bye?"}]
    assert "None: a reward function receives the prompts and completions only." in (
        out / "prompt_data_report.md").read_text()


def test_a_repeated_prompt_is_a_duplicate_only_with_the_same_ground_truth(tmp_path):
    path = write_rows(tmp_path / "prompts.jsonl", [
        {"prompt": "2 + 2?", "ground_truth": "4", "id": 1}, {"prompt": "2 + 2?", "ground_truth": "4", "id": 2},
        {"prompt": "2 + 2?", "ground_truth": "5"}])
    code, out = validate(tmp_path, prompt_dataset=str(path))
    books = json.loads((out / "prompt_data" / "accounting.json").read_text())["datasets"][0]
    assert code == 0 and (books["used"], books["duplicates"], books["balanced"]) == (2, 1, True)
    assert [r["columns"] for r in canonical_pairs(out / "prompt_data")] == [{"ground_truth": "4", "id": 1},
                                                                           {"ground_truth": "5"}]


def test_a_gsm8k_row_may_give_its_own_ground_truth(tmp_path):
    path = write_rows(tmp_path / "gsm8k.jsonl", [{"question": "How many legs has a cat?", "answer": "Four.",
                                                  "ground_truth": "4"}])
    code, out = validate(tmp_path, prompt_dataset=str(path))
    assert code == 0 and canonical_pairs(out / "prompt_data")[0]["columns"] == {"answer": "Four.", "ground_truth": "4"}


GOOD_GSM8K = {"question": "Ann has 3 apples and buys 4 more. How many apples has she?",
              "answer": "3 + 4 = <<3+4=7>>7\n#### 7"}
GOOD_TRUTH = {"prompt": "What is 3 + 4?", "ground_truth": "7"}
# (case, good row, bad row, reason, field)
BAD_PROMPT_ROWS = [
    ("gsm8k answer without ####", GOOD_GSM8K, {**GOOD_GSM8K, "answer": "She has 7 apples."}, "bad_ground_truth",
     "answer"),
    ("gsm8k answer not a number", GOOD_GSM8K, {**GOOD_GSM8K, "answer": "3 + 4\n#### seven"}, "bad_ground_truth",
     "answer"),
    ("gsm8k without answer", GOOD_GSM8K, {"question": GOOD_GSM8K["question"]}, "missing_field", "answer"),
    ("gsm8k empty question", GOOD_GSM8K, {**GOOD_GSM8K, "question": " "}, "empty_field", "question"),
    ("empty ground truth", GOOD_TRUTH, {**GOOD_TRUTH, "ground_truth": ""}, "bad_ground_truth", "ground_truth"),
    ("boolean ground truth", GOOD_TRUTH, {**GOOD_TRUTH, "ground_truth": True}, "bad_ground_truth", "ground_truth"),
    ("object ground truth", GOOD_TRUTH, {**GOOD_TRUTH, "ground_truth": {"value": 7}}, "bad_ground_truth",
     "ground_truth"),
    ("reserved column", GOOD_TRUTH, {**GOOD_TRUTH, "completions": ["7"]}, "reserved_column", "completions"),
    ("columns too large", GOOD_TRUTH, {**GOOD_TRUTH, "notes": "x" * 70_000}, "row_too_large", "ground_truth, notes"),
    ("lone surrogate in a column", GOOD_TRUTH, {**GOOD_TRUTH, "source": "web\ud800"}, "not_utf8", "source"),
]


@pytest.mark.parametrize("case, good, bad, reason, field", BAD_PROMPT_ROWS, ids=[c[0] for c in BAD_PROMPT_ROWS])
def test_a_bad_prompt_row_is_rejected_with_its_file_line_field_and_reason(tmp_path, capsys, case, good, bad, reason,
                                                                          field):
    text = "question" if "question" in good else "prompt"
    rows = [{**good, text: f"{good[text]} ({i})"} for i in range(3)] + [bad]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = validate(tmp_path, prompt_dataset=str(path), max_bad_row_fraction=0.5)
    assert code == 0
    rejects = read_jsonl(out / "prompt_data" / "rejects.jsonl")
    assert [(r["file"], r["line"], r["field"], r["reason"]) for r in rejects] == [(str(path), 4, field, reason)]
    books = json.loads((out / "prompt_data" / "accounting.json").read_text())["datasets"][0]
    assert (books["input_rows"], books["used"], books["rejected"], books["balanced"]) == (4, 3, 1, True)
    code, _ = validate(tmp_path, prompt_dataset=str(path))  # over the default tolerance: not usable, and why
    output = capsys.readouterr().out
    assert code == 1 and f"{path}, line 4, field '{field}'" in output and reason in output


def test_validate_data_takes_a_prompt_dataset_alone(capsys):
    code = validate_data.run_standalone(["--prompt-dataset", str(SAMPLES / "gsm8k_prompts.jsonl")])
    output = capsys.readouterr().out
    assert code == 0 and "format gsm8k" in output and "6 rows: 6 used, 0 rejected" in output
    assert "preference" not in output and output.rstrip().endswith("result: usable")


def test_validate_data_warns_when_nothing_is_held_out_for_the_evaluation(tmp_path, capsys):
    """The datasets are usable, but with eval_split_fraction 0 and no eval_dataset of their kind the pipeline's
    evaluation would have nothing: said on the dataset's summary."""
    preferences, prompts = str(SAMPLES / "explicit_preferences.jsonl"), str(SAMPLES / "explicit_prompts.jsonl")
    code, _ = validate(tmp_path, preference_dataset=preferences, prompt_dataset=prompts, eval_dataset=prompts)
    output = capsys.readouterr().out
    assert code == 0 and output.rstrip().endswith("result: usable")
    assert (f"  warning: eval_split_fraction is 0 and eval_dataset {prompts} holds prompt rows, not preference "
            "pairs: no preference pairs are held out to evaluate the reward model") in output
    assert "no prompts are held out" not in output  # the prompts' eval rows come from eval_dataset
    code, _ = validate(tmp_path, prompt_dataset=prompts)
    assert ("  warning: eval_split_fraction is 0 and no eval_dataset is given: nothing is held out to evaluate "
            "the tuned policy (nor the reward model); give an eval_dataset, or set eval_split_fraction above 0 "
            "(e.g. 0.1) (rlhf-pipeline run refuses this)") in capsys.readouterr().out
    code, _ = validate(tmp_path, prompt_dataset=prompts, eval_split_fraction=0.1)
    assert "warning" not in capsys.readouterr().out


def test_the_prompt_stage_writes_the_columns_for_the_reward_function(tmp_path):
    base_model = tmp_path / "base_model"
    write_model_reference(base_model, str(SAMPLES / "tokenizer"), "test tokenizer")
    prompts, report = tmp_path / "prompts", tmp_path / "prompts.md"
    outputs = call_stage(
        prepare_prompt_data, prompt_dataset=str(SAMPLES / "gsm8k_prompts.jsonl"), eval_dataset="",
        instruction="Solve it. End with '#### N'.",
        prompt_sequence_length=512, batch_size=2, reinforcement_learning_train_epochs=1,
        reinforcement_learning_train_steps=0, eval_split_fraction=0.2, max_eval_prompts=200, seed=0,
        code_version="test", base_model=SimpleNamespace(path=str(base_model)),
        prompt_data=SimpleNamespace(path=str(prompts)), data_report=SimpleNamespace(path=str(report)))
    rows = canonical_pairs(prompts)
    assert outputs.train_rows + outputs.eval_rows == 6 and outputs.eval_rows > 0
    assert sorted(r["columns"]["ground_truth"] for r in rows) == sorted(GSM8K_TRUTHS)
    assert all(r["prompt_messages"][0]["content"].startswith("Solve it. End with '#### N'.\n\n") for r in rows)
    assert "- `ground_truth`: 6 of 6 prompts" in report.read_text()
