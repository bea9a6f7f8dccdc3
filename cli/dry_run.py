"""`rlhf-pipeline run --dry-run`: the stages a run would execute and those the cache would give, with
nothing run.

The child process (cli/local_child.py) goes through the DAG with kfp.local exactly as a run
does, with the same values and so the same cache keys, but every task that misses the cache is
pretended: its command does not run, it writes empty outputs, and nothing enters the cache. A task
downstream of a pretended one then misses the cache as it would after the real task ran again. The
planning step's outputs choose the DAG's branches, so a pretended planning step answers with the
real plan (components/common/algorithms.py).
"""

import json
from pathlib import Path

EXECUTOR_INPUT_FLAG, FUNCTION_FLAG = "--executor_input", "--function_to_execute"
PLAN_FUNCTION = "plan_stages"


def _argument(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def pretended_outputs(command: list[str]) -> tuple[Path, dict]:
    """Where the task's executor output goes, and what a pretended run of the task writes there:
    its output artifacts where kfp.local placed them (left empty), every output parameter 0,
    except the planning step's, which are the real plan."""
    executor_input = json.loads(_argument(command, EXECUTOR_INPUT_FLAG))
    outputs = executor_input["outputs"]
    values = {name: 0 for name in outputs.get("parameters", {})}  # 0 reads as any number type, and as text
    if _argument(command, FUNCTION_FLAG) == PLAN_FUNCTION:
        from components.common.algorithms import plan_stages_from

        plan = plan_stages_from(executor_input["inputs"]["parameterValues"])
        values.update(reward_model=plan.reward_model, policy_tuning=plan.policy_tuning)
    return Path(outputs["outputFile"]), {"parameterValues": values, "artifacts": outputs.get("artifacts", {})}


def pretend_tasks() -> None:
    """In this process: kfp.local runs no task's command and writes nothing into its cache."""
    from kfp.local import cache, status, subprocess_task_handler

    def pretend(handler) -> status.Status:
        path, output = pretended_outputs(list(handler.full_command))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(output))
        return status.Status.SUCCESS

    subprocess_task_handler.SubprocessTaskHandler.run = pretend
    cache.LocalCache.put = lambda self, key, outputs: None
