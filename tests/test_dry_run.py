"""`run --dry-run`: a task that misses the cache is pretended, writing outputs that make no branch
go another way than the real run would."""

import json

from cli.dry_run import pretended_outputs
from cli.local_run import child_environment


def command(function: str, inputs: dict, tmp_path) -> list[str]:
    executor_input = {
        "inputs": {"parameterValues": inputs},
        "outputs": {"parameters": {"reward_model": {"outputFile": "x"}, "policy_tuning": {"outputFile": "y"}},
                    "artifacts": {"model": {"artifacts": [{"name": "model", "uri": str(tmp_path / "model")}]}},
                    "outputFile": str(tmp_path / "executor_output.json")},
    }
    return ["sh", "-ec", "program", "--executor_input", json.dumps(executor_input), "--function_to_execute", function]


def test_a_pretended_planning_step_answers_with_the_real_plan(tmp_path):
    inputs = {"algorithm": "dpo", "reward_function": "", "preference_dataset": "p.jsonl",
              "train_reward_model_for_eval": False, "code_version": "1"}
    path, output = pretended_outputs(command("plan_stages", inputs, tmp_path))
    assert path == tmp_path / "executor_output.json"
    assert output["parameterValues"] == {"reward_model": "skip", "policy_tuning": "offline"}


def test_any_other_pretended_step_writes_zeros_and_its_artifacts_where_kfp_placed_them(tmp_path):
    _, output = pretended_outputs(command("resolve_base_model", {"seed": 0}, tmp_path))
    assert output == {"parameterValues": {"reward_model": 0, "policy_tuning": 0},
                      "artifacts": {"model": {"artifacts": [{"name": "model", "uri": str(tmp_path / "model")}]}}}


def test_library_progress_bars_are_off_in_a_local_run_unless_the_user_set_them():
    assert child_environment({"PATH": "/bin"}) == {
        "PATH": "/bin", "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    assert child_environment({"HF_HUB_DISABLE_PROGRESS_BARS": "0"})["HF_HUB_DISABLE_PROGRESS_BARS"] == "0"
