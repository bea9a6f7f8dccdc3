import subprocess
import sys

import pytest

from components.common.steps import derive_train_steps, resolve_train_steps


@pytest.mark.parametrize(
    "rows, epochs, batch, expected",
    [(3000, 30, 64, 1410), (2000, 10, 64, 320), (64, 1, 64, 1), (65, 1, 64, 2), (0, 5, 64, 0), (100, 3, 10, 30)],
)
def test_derived_steps_follow_the_course_rule(rows, epochs, batch, expected):
    assert derive_train_steps(rows, epochs, batch) == expected


def test_a_given_step_count_wins_and_zero_derives():
    assert resolve_train_steps(7, rows=3000, epochs=30, batch_size=64) == 7
    assert resolve_train_steps(0, rows=3000, epochs=30, batch_size=64) == 1410
    with pytest.raises(ValueError):
        resolve_train_steps(-1, rows=10, epochs=1, batch_size=64)
    with pytest.raises(ValueError):
        derive_train_steps(10, 1, 0)


@pytest.mark.parametrize("size, epochs, expected", [("3000", "30", "1410"), ("2000", "10", "320")])
def test_steps_command_prints_the_course_figures(size, epochs, expected):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "steps", "--dataset-size", size, "--epochs", epochs],
        capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == expected
