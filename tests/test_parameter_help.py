"""`rlhf-pipeline params`: every parameter of the compiled pipeline, with its description, and a
parameter file that `run` and `submit` read back as the defaults."""

import pytest

from cli.main import main
from pipeline.parameters import PARAMETERS
from cli.submission.parameter_file import load_parameter_values
from cli.submission.template import DEFAULT_TEMPLATE, inputs_from_spec, load_template
from cli.submission.validation import validate_for_pipeline


def words(text: str) -> str:
    return " ".join(text.split())


def test_params_lists_every_root_parameter_of_pipeline_yaml_with_its_description(capsys):
    assert main(["params"]) == 0
    listing = capsys.readouterr().out
    headings = [line.split(" (", 1)[0] for line in listing.splitlines() if not line.startswith(" ")]
    inputs = inputs_from_spec(load_template(DEFAULT_TEMPLATE))
    assert headings == [p.name for p in PARAMETERS] and set(headings) == set(inputs)
    for name, spec in inputs.items():
        assert spec.description and words(spec.description) in words(listing), name


def test_params_shows_type_default_and_allowed_values(capsys):
    assert main(["params", "algorithm", "prompt_dataset", "kl_coeff"]) == 0
    headings = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert headings == [
        "prompt_dataset (str, required, a dataset path or gs:// URI, not empty)",
        "kl_coeff (float, default 0.1, at least 0 (0 disables the KL penalty))",
        "algorithm (str, default 'ppo', one of ppo, grpo, rloo, dpo, kto)",
    ]


def test_params_refuses_an_unknown_name_in_one_line(capsys):
    assert main(["params", "kl_coef"]) == 2
    assert capsys.readouterr().err == (
        "error: unknown parameter 'kl_coef' (did you mean 'kl_coeff'?): not an input of this pipeline\n")


def test_write_defaults_starts_a_params_file_that_run_reads_as_the_defaults(tmp_path, capsys):
    path = tmp_path / "my-run.yaml"
    assert main(["params", "--write-defaults", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote {path}: {len(PARAMETERS)} parameters at their defaults; fill in the required ones\n"
    text = path.read_text()
    assert "# kl_coeff (float, default 0.1, at least 0 (0 disables the KL penalty)): Weight of the KL" in text

    values = load_parameter_values(path, [])
    assert list(values) == [p.name for p in PARAMETERS]
    with pytest.raises(Exception, match="prompt_dataset: '' is not allowed"):
        validate_for_pipeline(values)
    values.update(prompt_dataset="p.jsonl", preference_dataset="q.jsonl", large_model_reference="m")
    checked = validate_for_pipeline(values)
    expected = {p.name: p.default for p in PARAMETERS if not p.required and p.default is not None
                and not str(p.default).startswith("{{$.")}
    assert {name: checked[name] for name in expected} == expected
    assert {"project", "location", "instruction", "eval_dataset", "model_display_name"}.isdisjoint(checked)


def test_write_defaults_never_overwrites_a_file(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text("kl_coeff: 0.3\n")
    assert main(["params", "--write-defaults", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path} already exists; remove it or name another file\n"
    assert path.read_text() == "kl_coeff: 0.3\n"
