"""Running the whole DAG on this machine through kfp.local."""

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from pipeline.image import DEFAULT_IMAGE

RUNNERS = ("subprocess", "docker")
DATASET_PARAMETERS = ("preference_dataset", "prompt_dataset", "eval_dataset")


@dataclass
class LocalRunConfig:
    runner: str = "subprocess"
    output_dir: Path = Path("rlhf-runs")
    enable_caching: bool = True
    image: str = DEFAULT_IMAGE


@dataclass
class LocalRunResult:
    run_dir: Path
    summary_path: Path
    summary: dict[str, Any]


def embedded_default_values() -> dict[str, Any]:
    """The parameter values of the bundled sample task, datasets included."""
    import embedded_default

    values = embedded_default.load_params()
    values.update(
        preference_dataset=str(embedded_default.PREFERENCE_FILE),
        prompt_dataset=str(embedded_default.PROMPT_FILE),
        eval_dataset=str(embedded_default.EVAL_FILE),
    )
    return values


def with_embedded_default(user_values: dict[str, Any]) -> dict[str, Any]:
    """The user's values, on top of the embedded default when the user names no dataset."""
    if any(user_values.get(name) for name in ("preference_dataset", "prompt_dataset")):
        return dict(user_values)
    return {**embedded_default_values(), **user_values}


def preflight(values: dict[str, Any]) -> None:
    """Fail in seconds, before any training, on a missing dataset or an unusable model reference."""
    from components.common.data.sources import resolve
    from components.resolve_base_model.references import resolve_model_reference

    for name in DATASET_PARAMETERS:
        if values.get(name):
            try:
                resolve(str(values[name]))
            except UserInputError as error:
                raise UserInputError(f"{name}: {error}") from None
    resolve_model_reference(values.get("large_model_reference", ""))
    if values.get("reward_model_reference"):
        resolve_model_reference(values["reward_model_reference"])


def _init_kfp_local(config: LocalRunConfig, run_dir: Path) -> None:
    from kfp import local

    if config.runner == "docker":
        try:
            runner = local.DockerRunner()
            import docker

            docker.from_env().ping()
        except Exception as error:  # the docker client raises several unrelated types
            raise UserInputError(
                f"--runner docker needs a running Docker engine ({error.__class__.__name__}: {error}); "
                f"build the image with `docker build -t {config.image} .` on a machine with Docker, "
                "or use the default subprocess runner"
            ) from None
    elif config.runner == "subprocess":
        runner = local.SubprocessRunner(use_venv=False)
    else:
        raise UserInputError(f"unknown runner '{config.runner}'; accepted: {', '.join(RUNNERS)}")
    local.init(
        runner=runner,
        pipeline_root=str(run_dir / "artifacts"),
        enable_caching=config.enable_caching,
        cache_root=str(config.output_dir.resolve() / ".kfp_cache"),
        raise_on_error=True,
    )


def explicit_values(values: dict[str, Any]) -> dict[str, Any]:
    """Every parameter whose default only Vertex can fill, given explicitly as the empty string.

    kfp.local cannot read a None default from the spec, and takes Vertex's run placeholders (the
    default `project` and `location`) for I/O placeholders; every component reads "" as unset.
    """
    from components.common.vertex_placeholders import is_vertex_placeholder
    from pipeline.parameters import PARAMETERS

    unset = {
        p.name: ""
        for p in PARAMETERS
        if not p.required and (p.default is None or is_vertex_placeholder(p.default))
    }
    return {**unset, **values}


def run_locally(values: dict[str, Any], config: LocalRunConfig) -> LocalRunResult:
    """Run the DAG with `values`; write `summary.json` into a new run directory and return it."""
    run_dir = (config.output_dir / time.strftime("run-%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "parameters.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    from pipeline.dag import build_pipeline

    _init_kfp_local(config, run_dir)
    pipeline_func = build_pipeline(config.image)
    task = pipeline_func(**explicit_values(values))
    summary_path = run_dir / "summary.json"
    shutil.copyfile(task.outputs["run_summary"].path, summary_path)
    return LocalRunResult(run_dir, summary_path, json.loads(summary_path.read_text()))
