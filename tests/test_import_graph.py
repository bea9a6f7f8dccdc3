"""Which way the imports point: the command line (cli/) drives the pipeline (pipeline/), which wires the
steps (components/); the steps import neither of the two nor the sample tasks (embedded_default/), which
register into them (components/common/registry.py); the pipeline does not know the command line;
no stage imports another, and components/common imports none: what two stages share lives in common."""

import pytest

from conftest import REPO_ROOT


def importers_of(package: str, roots: tuple[str, ...]) -> list[str]:
    """The modules under `roots` with an import of `package` anywhere in them (module level or inside a function)."""
    return [str(path.relative_to(REPO_ROOT)) for root in roots for path in sorted((REPO_ROOT / root).rglob("*.py"))
            if any(line.lstrip().startswith((f"from {package}", f"import {package}"))
                   for line in path.read_text().splitlines())]


@pytest.mark.parametrize("package, roots", [
    ("pipeline", ("components", "embedded_default")),  # why the steps' code version leaves pipeline/ out
    ("cli", ("components", "embedded_default", "pipeline")),
    ("embedded_default", ("components",)),  # the sample tasks register; the stages do not name them
])
def test_no_import_points_the_wrong_way(package, roots):
    assert importers_of(package, roots) == []


STAGES = ("evaluate", "plan_stages", "prepare_preference_data", "prepare_prompt_data", "resolve_base_model",
          "summarize_run", "supervised_fine_tuning", "train_reward_model", "tune_policy", "tune_preference",
          "upload_model")


def test_the_stage_folders_list_every_stage():
    folders = {path.name for path in (REPO_ROOT / "components").iterdir()
               if path.is_dir() and (path / "component.py").is_file()}
    assert folders == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage_what_two_share_lives_in_common(stage):
    others = [other for other in STAGES if other != stage]
    offenders = [module for other in others for module in importers_of(f"components.{other}", (f"components/{stage}",))]
    assert offenders == []


def test_common_code_imports_no_stage():
    assert [module for stage in STAGES for module in importers_of(f"components.{stage}", ("components/common",))] == []
