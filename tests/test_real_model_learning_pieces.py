"""The pieces of benchmarks/real_model_learning.py that need no model and no shared data: the tasks, the
split, the reward function and the results writer."""

import json

import pytest

from benchmarks.final_answer_reward import final_answer, final_answer_reward
from benchmarks.learning_figures import markdown_table, write_results
from benchmarks.learning_tasks import arithmetic_problems, hh_split
from components.common.data.loading import PROMPT, DataSettings, load_dataset
from components.common.reward_functions import load_reward_function, score_completions
from conftest import REPO_ROOT


def test_arithmetic_problems_are_gsm8k_rows_with_no_question_on_both_sides(tmp_path):
    train, held_out = arithmetic_problems(50, 20, seed=3)
    assert (len(train), len(held_out)) == (50, 20)
    assert not {row["question"] for row in train} & {row["question"] for row in held_out}
    assert all(set(row) == {"question", "answer"} and row["answer"].startswith("#### ") for row in train + held_out)
    assert arithmetic_problems(50, 20, seed=3) == (train, held_out) != arithmetic_problems(50, 20, seed=4)
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in held_out))
    rows = load_dataset(str(path), PROMPT, DataSettings(system_prompt="Box it.")).examples  # the pipeline reads them
    assert rows[0].prompt_messages[0].content == "Box it." and rows[0].columns["ground_truth"] == held_out[0]["answer"][5:]
    with pytest.raises(ValueError, match="at least one"):
        arithmetic_problems(0, 5, seed=0)


def test_the_hh_split_is_fixed_holds_out_the_last_short_pairs_and_says_how():
    rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: yes {i}" + "x" * (i % 3) * 50, "rejected": f"\n\nHuman: q{i}\n\nAssistant: no"}
            for i in range(30)] + [{"chosen": "same", "rejected": "same"}]
    split = hh_split(rows, train_pairs=5, max_chars=60, held_out=4)
    short = [row for row in rows[:30] if len(row["chosen"]) <= 60]
    assert split.held_out == short[-4:] and split.train == short[:5]
    assert not {r["chosen"] for r in split.train} & {r["chosen"] for r in split.held_out}
    assert "the last 4 of them (file order) are held out" in split.rule and f"{len(short)} of 31 pairs" in split.rule
    with pytest.raises(ValueError, match="raise max_chars"):
        hh_split(rows, train_pairs=100, max_chars=60, held_out=4)


def test_the_reward_takes_the_last_boxed_answer_else_the_last_number():
    assert final_answer("so 3 + 4 = 7") == "7" and final_answer("\\boxed{12} then 5") == "12"
    assert final_answer("no number") is None
    completions = ["The answer is 7.", [{"role": "assistant", "content": "\\boxed{7.0}"}], "7 apples, no: 8", "none"]
    assert final_answer_reward(completions, ground_truth=["7", "7", "7", "7"]) == [1.0, 1.0, 0.0, 0.0]


def test_the_pipeline_loads_the_reward_as_a_user_function_and_calls_it_as_trl_does():
    from components.common.data.transcripts import Prompt

    reward = load_reward_function(f"{REPO_ROOT / 'benchmarks' / 'final_answer_reward.py'}:final_answer_reward")
    prompts = [Prompt("q", ())] * 2
    assert score_completions(reward, prompts, ["it is 4", "it is 5"], [[1], [2]], [{"ground_truth": "4"}] * 2,
                             conversational=False) == [1.0, 0.0]


def test_results_are_written_as_json_and_a_markdown_table(tmp_path):
    results = {"grpo": {"headline": "accuracy 0.1 -> 0.2", "kl_to_base": 0.51234, "seconds_per_step": 90.0},
               "dpo": {"headline": "implicit | 0.6"}}
    json_path, markdown_path = write_results(results, {"seed": "0"}, tmp_path)
    assert json.loads(json_path.read_text()) == {"settings": {"seed": "0"}, "cases": results}
    lines = markdown_path.read_text().splitlines()
    assert lines[0].startswith("| case | headline") and len(lines) == 4
    assert lines[2].startswith("| grpo | accuracy 0.1 -> 0.2 | 0.512 |") and "| 90 |" in lines[2]
    assert lines[3].startswith("| dpo | implicit \\| 0.6 |")  # a cell cannot break the table
    assert markdown_table({}) .count("\n") == 2


def test_trl_grpo_runs_at_the_pipeline_cases_settings(tmp_path):
    """Both GRPO cases read one set of arguments: TRL's config carries the KL coefficient, clip, loss,
    scaling, schedule, sampling and batch the pipeline's parameter file gives (and no TRL default that would
    change the work, such as gradient checkpointing)."""
    from benchmarks.real_model_learning import grpo_parameters, parse_args, trl_grpo_config
    from components.common.stage_settings import settings_from_arguments
    from components.tune_policy.config import PolicyTuningConfig
    from pipeline.parameters import defaults

    args = parse_args(["--beta", "0.07", "--learning-rate", "3e-4", "--grpo-steps", "40", "--generations", "8",
                       "--temperature", "0.9"])
    ours = settings_from_arguments(PolicyTuningConfig, {**defaults(), **grpo_parameters(args, tmp_path, tmp_path)})
    trl = trl_grpo_config(args, tmp_path)
    assert (trl.beta, trl.learning_rate, trl.max_steps) == (ours.kl_coeff, ours.learning_rate, ours.steps) == (
        0.07, pytest.approx(3e-4), 40)
    assert (trl.num_generations, trl.per_device_train_batch_size) == (ours.num_generations, ours.batch_size) == (8, 32)
    assert (trl.loss_type, trl.scale_rewards, trl.epsilon) == (ours.loss, ours.scale_rewards, ours.epsilon)
    assert (trl.temperature, trl.max_completion_length) == (ours.temperature, ours.max_new_tokens)
    assert trl.warmup_steps == int(ours.warmup_fraction * ours.steps)
    assert trl.lr_scheduler_type == ours.lr_schedule and trl.max_grad_norm == ours.max_grad_norm
    assert not trl.gradient_checkpointing and not trl.mask_truncated_completions and trl.top_k == 0


def test_the_pair_cases_tune_dpo_at_its_own_learning_rate_and_train_the_reward_model_only_when_asked(tmp_path):
    from benchmarks.real_model_learning import pairs_parameters, parse_args
    from components.common.stage_settings import settings_from_arguments
    from components.tune_preference.config import PreferenceTuningConfig
    from pipeline.parameters import defaults

    args = parse_args(["--dpo-learning-rate", "3e-4", "--learning-rate", "1e-4", "--dpo-steps", "26"])
    dpo_alone = pairs_parameters(args, tmp_path, tmp_path, ["dpo"])
    config = settings_from_arguments(PreferenceTuningConfig, {**defaults(), **dpo_alone,
                                                              "preference_tuning_train_steps": 26})
    assert config.learning_rate == pytest.approx(3e-4)
    assert dpo_alone["reinforcement_learning_train_steps"] == 26 and not dpo_alone["train_reward_model_for_eval"]
    both = pairs_parameters(args, tmp_path, tmp_path, ["reward-model", "dpo"])
    assert both["train_reward_model_for_eval"]
    reward_alone = pairs_parameters(args, tmp_path, tmp_path, ["reward-model"])
    assert reward_alone["train_reward_model_for_eval"] and reward_alone["reinforcement_learning_train_steps"] == 1
