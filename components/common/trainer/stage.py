"""How every stage trained with a TRL trainer (reward model, SFT, DPO/KTO) starts and ends, around the
training itself (run_trainer, components/common/trainer/checkpoints.py).
"""

from pathlib import Path

import torch

from components.common.checkpoints import remove_task_checkpoints
from components.common.distributed import TrainingProcesses
from components.common.models import Placement


def start_training(config, placement: Placement | None, log_dir: str | Path) -> tuple[TrainingProcesses, Placement]:
    """This process's place among the training processes, once `config` is checked against their number,
    and the placement of its models (`placement`, else the detected one); makes `log_dir` and seeds
    torch with `config.seed`."""
    processes = TrainingProcesses.from_environment()
    config.validate(processes.count)
    placement = placement or Placement.detect()
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    return processes, placement


def finish_training(logs, checkpoint_dir: str) -> None:
    """Close the logs' writer (run_trainer's, once the stage has written its closing figures) and delete
    the task's checkpoints ("" for none): the stage is done, nothing is left to resume."""
    logs.writer.close()
    if checkpoint_dir:
        remove_task_checkpoints(checkpoint_dir)
