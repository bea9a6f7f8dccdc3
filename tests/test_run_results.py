"""The results `rlhf-pipeline run` prints at the end: no figure rounded into a different statement."""

from types import SimpleNamespace

import pytest

from components.evaluate.report_content import format_share
from cli.commands.run import print_results


@pytest.mark.parametrize("share, shown", [
    (0.0, "0%"), (0.25, "25%"), (0.005, "0.5%"), (0.0049, "0.5%"), (0.00001, "0.001%"),
    (0.9996, "99.96%"), (0.999, "99.9%"), (1.0, "100%"),
])
def test_a_share_above_0_never_reads_0_and_below_1_never_100(share, shown):
    assert format_share(share) == shown


def test_results_show_a_small_share_of_cut_responses(capsys):
    policy = {"base_gold_score": None, "implicit_reward_pairs": 0, "accuracy_rows_scored": None,
              "kl_to_base": 5.8, "base_truncated_fraction": 0.0, "tuned_truncated_fraction": 0.005}
    summary = {"algorithm": "dpo", "reward_model": {"eval_accuracy": None}, "policy": policy,
               "paths": {"report_html": "/runs/run-1/report.html"}}
    print_results(SimpleNamespace(summary=summary, run_dir="/runs/run-1", summary_path="/runs/run-1/summary.json"))
    assert "KL to base 5.800; responses cut at the length limit: base 0%, tuned 0.5%\n" in capsys.readouterr().out


def test_results_say_when_tuning_learned_nothing(capsys):
    policy = {"base_gold_score": None, "implicit_reward_pairs": 0, "accuracy_rows_scored": None,
              "kl_to_base": 0.0, "base_truncated_fraction": 0.0, "tuned_truncated_fraction": 0.0}
    summary = {"algorithm": "grpo", "reward_model": {"eval_accuracy": None}, "policy": policy,
               "tuning": {"warning": "no learning signal in any of the 3 steps"},
               "paths": {"report_html": "/runs/run-1/report.html"}}
    result = SimpleNamespace(summary=summary, run_dir="/runs/run-1", summary_path="/runs/run-1/summary.json")
    print_results(result)
    assert "warning: no learning: no learning signal in any of the 3 steps\n" in capsys.readouterr().out
    summary["tuning"]["warning"] = None
    print_results(result)
    assert "warning" not in capsys.readouterr().out
