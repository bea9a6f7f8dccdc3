"""The code version in every step's cache key follows the code the steps run, and nothing else."""

from components.common.code_version import source_digest


def test_the_digest_follows_the_steps_code_not_the_command_line(tmp_path):
    for name in ("components/stage.py", "embedded_default/task.py", "cli/console.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    before = source_digest(tmp_path)
    (tmp_path / "cli" / "console.py").write_text("x = 2\n")
    assert source_digest(tmp_path) == before
    (tmp_path / "embedded_default" / "task.py").write_text("x = 2\n")
    changed = source_digest(tmp_path)
    assert changed != before
    (tmp_path / "components" / "stage.py").write_text("x = 2\n")
    assert source_digest(tmp_path) != changed

