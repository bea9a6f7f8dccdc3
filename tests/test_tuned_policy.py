"""`rlhf-pipeline chat RUN_DIR`: the run's tuned policy answers prompts as the evaluation prompts it
(the run's instruction, its chat template when it has one, the pipeline's generation)."""

import json
import shutil
import subprocess
import sys

import pytest

from components.common.data.transcripts import Prompt
from components.common.generation import generate_responses
from components.common.models import load_tokenizer
from conftest import REPO_ROOT
from cli.tuned_policy import TunedPolicy, prompts_from_file, prompts_from_text, run_settings

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}<assistant>"


def make_run(directory, model, **parameters):
    shutil.copytree(model, directory / "policy")
    (directory / "summary.json").write_text(json.dumps({"paths": {"policy": str(directory / "policy")}}))
    (directory / "parameters.json").write_text(json.dumps(
        {"instruction": "Say it", "target_sequence_length": 5, "sampling_temperature": 0.7, **parameters}))
    return directory


def chat(*args):
    return subprocess.run([sys.executable, "-m", "cli", "chat", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)


def test_chat_answers_with_the_tuned_policy_and_the_runs_instruction(tmp_path, tiny_causal_lm):
    from transformers import AutoModelForCausalLM

    run_dir = make_run(tmp_path / "run", tiny_causal_lm)
    result = chat(run_dir, "the cat sat", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr
    model = AutoModelForCausalLM.from_pretrained(run_dir / "policy")
    expected = generate_responses(model, load_tokenizer(str(run_dir / "policy"), "left"), ["Say it\n\nthe cat sat"],
                                  max_new_tokens=5, max_prompt_tokens=512, greedy=True).texts[0].strip()
    assert result.stdout == f"[1] Say it\n\nthe cat sat\n=> {expected}\n"


def test_a_model_with_a_chat_template_reads_the_prompt_through_it(tmp_path, tiny_causal_lm):
    run_dir = make_run(tmp_path / "run", tiny_causal_lm, use_chat_template="auto")
    config = json.loads((run_dir / "policy" / "tokenizer_config.json").read_text())
    (run_dir / "policy" / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": TEMPLATE}))
    policy = TunedPolicy(run_settings(run_dir))
    assert policy.formatter.prompt(Prompt("Say it\n\nhi")) == "<user> Say it\n\nhi <assistant>"
    assert len(policy.answer([Prompt("hi")], temperature=0.0, max_new_tokens=3, seed=0)) == 1


def test_chat_reads_prompt_datasets_as_the_pipeline_does(tmp_path, tiny_causal_lm):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": text}]}) + "\n" for text in ("a", "b")))
    prompts = prompts_from_file(str(path), run_settings(make_run(tmp_path / "run", tiny_causal_lm)))
    assert [p.conversation() for p in prompts] == [[{"role": "user", "content": f"Say it\n\n{text}"}] for text in "ab"]


def test_chat_puts_the_runs_system_prompt_before_prompts_without_one(tmp_path, tiny_causal_lm):
    settings = run_settings(make_run(tmp_path / "run", tiny_causal_lm, system_prompt="Be brief."))
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"prompt": [{"role": "system", "content": "Own."}, {"role": "user", "content": "a"}]})
                    + "\n")
    typed, = prompts_from_text(["hi"], settings)
    assert typed.conversation() == [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Say it\n\nhi"}]
    assert typed.text == "Be brief.\n\nSay it\n\nhi"
    own, = prompts_from_file(str(path), settings)
    assert own.conversation()[0] == {"role": "system", "content": "Own."}


@pytest.mark.parametrize("broken, message", [
    ("no-summary", "no summary.json; give the directory of a finished `rlhf-pipeline run`"),
    ("no-policy", "its tuned policy"),
])
def test_a_run_without_its_policy_is_one_line(tmp_path, tiny_causal_lm, broken, message):
    run_dir = make_run(tmp_path / "run", tiny_causal_lm)
    if broken == "no-summary":
        (run_dir / "summary.json").unlink()
    else:
        shutil.rmtree(run_dir / "policy")
    result = chat(run_dir, "hello")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
