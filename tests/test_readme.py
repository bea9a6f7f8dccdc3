"""README.md as a newcomer follows it: every command runs as written (after the set-up), the sample
output is what the code prints, and the parameter table is the pipeline's."""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from cli.main import build_parser
from cli.console import finished_line, started_line
from cli.kfp_stream import Stage
from cli.local_run import stage_titles, steps_per_run
from pipeline.parameters import markdown_table

README = (REPO_ROOT / "README.md").read_text()
FENCED = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.MULTILINE | re.DOTALL)

# Commands a test does not run, and why: each still has to parse (rlhf-pipeline's options exist).
NOT_RUN = {
    "set-up": lambda words: words[:2] == ["python3", "-m"] or words[0] in ("source", "pip"),
    "runs for minutes": lambda words: words[:2] == ["rlhf-pipeline", "run"] and "--dry-run" not in words,
    "needs a finished run": lambda words: words[:2] == ["rlhf-pipeline", "chat"],
    "needs the cloud": lambda words: words[:2] == ["rlhf-pipeline", "submit"],
    "needs Docker and a registry": lambda words: words[0] == "docker" or words[0].startswith("IMAGE=")
    or any("$IMAGE" in word for word in words),
    "a benchmark: minutes to half an hour": lambda words: any(word.startswith("benchmarks/") for word in words),
}
RUN_HERE = {"params", "runs", "steps", "validate-data"}  # rlhf-pipeline subcommands that take seconds


def fenced_blocks(language: str) -> list[str]:
    return [re.sub(rf"^{indent}", "", body, flags=re.MULTILINE)
            for indent, lang, body in FENCED.findall(README) if lang == language]


def shell_commands() -> list[str]:
    """Every command of the README's bash blocks, in order, continuation lines joined."""
    commands = []
    for block in fenced_blocks("bash"):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                commands.append(command.strip())
    return commands


def reason_not_run(command: str) -> str | None:
    words = shlex.split(command, comments=True)
    return next((reason for reason, applies in NOT_RUN.items() if applies(words)), None)


def test_readme_lists_every_parameter_as_the_pipeline_defines_it():
    assert markdown_table() in README


def test_ci_runs_the_test_commands_that_readme_gives():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    test_commands = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")]
    assert len(test_commands) == 2  # the suite, and the vLLM tests in their own environment
    assert all(command in README for command in test_commands)


def test_every_readme_command_is_run_here_or_has_a_reason_not_to_and_its_options_exist():
    ran = []
    for command in shell_commands():
        words = shlex.split(command, comments=True)
        if words[0] == "rlhf-pipeline" and "--help" not in words:
            build_parser().parse_args(words[1:])  # exits on an unknown command or option
        if reason_not_run(command) is None:
            assert words[0] == "rlhf-pipeline" or words[:2] == ["python", "compile.py"], command
            ran.append(command)
    # the cheap ones run in the next test: the newcomer's first steps are among them
    assert {"rlhf-pipeline run --dry-run", "rlhf-pipeline params", "rlhf-pipeline runs"} <= set(ran)


def fresh_clone(directory):
    """The repository's files as a clone has them (tracked, and new ones not ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO_ROOT / name).is_file():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, directory / name)
    return directory


def test_readme_commands_run_as_written_in_a_fresh_clone(tmp_path):
    """The cheap commands, in the README's order, in a copy of the repository, with the virtual
    environment active (its bin first on PATH, as `source .venv/bin/activate` does); a `yaml` block
    whose first line names a file is that file, written where the README shows it."""
    clone = fresh_clone(tmp_path / "clone")
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    for yaml_block in fenced_blocks("yaml"):
        name = re.match(r"# ([\w.-]+\.yaml)\n", yaml_block)
        if name:
            (clone / name.group(1)).write_text(yaml_block)
    for command in shell_commands():
        if reason_not_run(command) is not None:
            continue
        result = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stdout + result.stderr, command


def sample_output() -> list[str]:
    section = README[README.index("### What `rlhf-pipeline run` prints and writes"):]
    return next(body for _, lang, body in FENCED.findall(section) if lang == "").splitlines()


RESULT_LINES = (  # what print_results prints after the stages, for a PPO run with a gold scorer
    r"algorithm: ppo", r"reward model eval accuracy: \S+ \[\S+, \S+\]",
    r"mean reward: base .+ -> tuned .+; win rate \S+ \[\S+, \S+\]", r"gold score: base .+ -> tuned .+",
    r"implicit-reward accuracy of tuned vs base \(\d+ held-out pairs\): .+",
    r"KL to base [\d.]+; responses cut at the length limit: base [\d.]+%, tuned [\d.]+%",
    r"run directory: /\S+/run-\d{8}-\d{6}", r"summary: /\S+/summary.json", r"report: /\S+/report.html",
)
STAGE_LINE = re.compile(r"^(?P<clock>\d\d:\d\d:\d\d) \[(?P<index>\d+)/(?P<total>\d+)\] (?P<title>[^:]+): (?P<said>.*)$")


def test_readme_sample_output_has_the_shape_of_what_run_prints():
    """The README's sample: the checks, the run line, each stage's started line as `started_line`
    writes it and a done line as `finished_line` begins it, and the results in `print_results`' order."""
    lines = sample_output()
    tasks = {title: task for task, title in stage_titles().items()}
    stage_lines = [STAGE_LINE.match(line) for line in lines if STAGE_LINE.match(line)]
    started = [m for m in stage_lines if m["said"].startswith("started")]
    assert len(started) == steps_per_run() and len({m["title"] for m in started}) == steps_per_run()
    for match in started:
        stage = Stage(tasks[match["title"]], match["title"], int(match["index"]), steps_per_run(),
                      REPO_ROOT / "logs" / f"{tasks[match['title']]}.log", started=match["clock"])
        assert started_line(stage) == match.group(0)
        done = next(m for m in stage_lines if m["title"] == match["title"] and m["said"].startswith("done"))
        stage.ended, stage.seconds, stage.status = done["clock"], 1.0, "succeeded"
        assert done.group(0).startswith(finished_line(stage).split(" done in ")[0] + " done in ")
    assert [int(m["index"]) for m in started] == list(range(1, steps_per_run() + 1))
    first_stage = lines.index(started[0].group(0))
    assert all(line.startswith("checked ") for line in lines[:first_stage - 1])
    assert lines[first_stage - 1].startswith("sample task summaries: 11 stages, run directory ")
    results = lines[lines.index(stage_lines[-1].group(0)) + 1:]
    assert len(results) == len(RESULT_LINES)
    for line, pattern in zip(results, RESULT_LINES):
        assert re.fullmatch(pattern, line), line


@pytest.mark.parametrize("command", ["--help", "run --help", "params", "runs --help", "chat --help"])
def test_help_and_params_run_without_error(command):
    result = subprocess.run([sys.executable, "-m", "cli", *command.split()], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0 and result.stdout and not result.stderr
