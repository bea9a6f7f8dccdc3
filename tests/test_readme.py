from conftest import REPO_ROOT
from pipeline.parameters import markdown_table

README = (REPO_ROOT / "README.md").read_text()


def test_readme_lists_every_parameter_as_the_pipeline_defines_it():
    assert markdown_table() in README


def test_ci_runs_the_test_command_that_readme_gives():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    test_command = next(line for line in ci.splitlines() if "pytest" in line)
    assert test_command in README
