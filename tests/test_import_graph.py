"""Which way the imports point: the steps (components/) import neither the command line and DAG
(pipeline/) nor the sample tasks (embedded_default/), which register into them (components/common/registry.py)."""

import pytest

from conftest import REPO_ROOT


def importers_of(package: str, roots: tuple[str, ...]) -> list[str]:
    """The modules under `roots` with an import of `package` anywhere in them (module level or inside a function)."""
    return [str(path.relative_to(REPO_ROOT)) for root in roots for path in sorted((REPO_ROOT / root).rglob("*.py"))
            if any(line.lstrip().startswith((f"from {package}", f"import {package}"))
                   for line in path.read_text().splitlines())]


@pytest.mark.parametrize("package, roots", [
    ("pipeline", ("components", "embedded_default")),  # why the steps' code version leaves pipeline/ out
    ("embedded_default", ("components",)),  # the sample tasks register; the stages do not name them
])
def test_no_import_points_the_wrong_way(package, roots):
    assert importers_of(package, roots) == []
