"""The child process of `rlhf-pipeline run`: runs the DAG with kfp.local, output to its stdout.

`python -m cli.local_child <run dir>/logs/request.json`. The parent (cli/local_run.py)
reads everything this process and its tasks print and writes `<run dir>/logs/outcome.json`'s
status: succeeded (with the summary artifact's path), failed (a task failed: the parent finds which
and why in the stream), input-error (a UserInputError before any task) or crashed.
"""

import json
import logging
import sys
import traceback
from pathlib import Path

from components.common.errors import UserInputError
from cli.kfp_stream import strip_ansi
from cli.local_run import OUTCOME_FILE, LocalRunConfig, execute_pipeline

LOG_FORMAT = "%(asctime)s.%(msecs)03d - %(levelname)s - %(message)s"


def _show_kfp_info_logs() -> None:
    """kfp.local says "Task X cache hit ..." at INFO level through the root logger, which has no
    handler of its own: give it one, in kfp's own format, so the parent sees cached stages."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def main(argv: list[str]) -> int:
    request_path = Path(argv[0])
    request = json.loads(request_path.read_text(encoding="utf-8"))
    run_dir = Path(request["run_dir"])
    config = LocalRunConfig(**{**request["config"], "output_dir": Path(request["config"]["output_dir"])})
    outcome_path = request_path.with_name(OUTCOME_FILE)

    def write(outcome: dict) -> None:
        outcome_path.write_text(json.dumps(outcome, indent=2) + "\n")

    _show_kfp_info_logs()
    if config.dry_run:
        from cli.dry_run import pretend_tasks

        pretend_tasks()
    try:
        summary = execute_pipeline(request["values"], config, run_dir)
    except UserInputError as error:
        write({"status": "input-error", "message": str(error)})
        return 2
    except RuntimeError as error:  # kfp.local: "Pipeline ... finished with status FAILURE ..."
        print(f"{type(error).__name__}: {error}", flush=True)
        write({"status": "failed", "message": strip_ansi(str(error))})
        return 1
    except BaseException as error:
        traceback.print_exc()
        sys.stderr.flush()
        write({"status": "crashed", "message": f"{type(error).__name__}: {error}"})
        return 1
    write({"status": "succeeded", "summary_artifact": str(summary)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
