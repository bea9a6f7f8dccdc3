"""Checkpoints of the stages trained with a Hugging Face (TRL) Trainer (reward model, SFT, DPO,
KTO): the Trainer's own, made safe to resume from after a kill.

The Trainer saves in `checkpoint-<step>` the trainable weights, optimizer, schedule, every process's
random states and its own state (step, log history), and resumes from one exactly, data position
included. Added here:

- the marker of a complete checkpoint (components.common.checkpoints), written once the Trainer and
  every process are done saving: the Trainer writes into the final folder, so a folder without it
  is a save cut short;
- two running totals the Trainer and TRL keep in memory only, which a resumed run would otherwise
  start from zero: the loss summed for `train_loss` (the Trainer averages over the steps of one
  `train()` call) and TRL's count of training tokens (`num_tokens`). The marker records them and
  they are put back when training resumes.

Checkpoints fall on logging steps only: there the Trainer has just moved its loss accumulator into
its total, so nothing else in memory is lost, and the losses logged after a resume equal an
uninterrupted run's.
"""

from pathlib import Path

from components.common.checkpoints import checkpoint_path, interval_steps, mark_complete, read_marker
from components.common.distributed import TrainingProcesses

# The Trainer deletes older checkpoints before the newest one gets its marker: keeping two keeps
# one complete checkpoint at every moment.
CHECKPOINTS_KEPT = 2
# The in-memory totals of a transformers Trainer (train_loss) and of TRL's RewardTrainer (num_tokens).
CARRIED_TOTALS = ("_total_loss_scalar", "_total_train_tokens")


def checkpoint_interval(requested: int, total_steps: int, logging_steps: int) -> int:
    """Steps between two checkpoints (`interval_steps`), rounded up to a multiple of `logging_steps`."""
    interval = interval_steps(requested, total_steps)
    return -(-interval // logging_steps) * logging_steps


def checkpoint_bookkeeping(trainer, folder: str | Path, processes: TrainingProcesses, resumed_from: Path | None):
    """A callback of `trainer` that marks each checkpoint complete and carries its totals over a resume."""
    from transformers import TrainerCallback

    class CheckpointBookkeeping(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            # train() has just set the totals to zero; a resumed run continues the killed run's.
            if resumed_from is not None:
                totals = read_marker(resumed_from)["totals"]
                for name in CARRIED_TOTALS:
                    setattr(trainer, name, totals[name])
                trainer._initial_global_step = 0  # train_loss averages over every step, not this call's

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = False  # the trained model is saved right after: no checkpoint needed

        def on_save(self, args, state, control, **kwargs):
            processes.wait_for_everyone()  # every process has saved its random states
            if processes.is_main:
                totals = {name: getattr(trainer, name) for name in CARRIED_TOTALS}
                record = {"processes": processes.count, "totals": totals}
                mark_complete(checkpoint_path(folder, state.global_step), record)

    return CheckpointBookkeeping()


def run_trainer(
    build,
    save,
    *,
    stage: str,
    steps: int,
    logging_steps: int,
    trainer_dir: str | Path,
    log_dir: str | Path,
    checkpoint_dir: str,
    checkpoint_interval_steps: int,
    processes: TrainingProcesses,
    whole_model,
    renamed_tags: dict[str, str] | None = None,
):
    """Train the Trainer that `build(trainer_dir, callbacks, checkpoint_steps)` returns, resuming from the
    newest complete checkpoint in `checkpoint_dir` ("" for none); its logs go to `log_dir` as TensorBoard
    scalars (components/common/trainer/logs.py). The first process then saves the trained model with
    `save(model)`; every process waits for it, the trainer released. A sharded model is gathered whole
    first, into the unsharded copy `whole_model()` makes (the model as the trainer trains it, adapters
    included).

    Returns what `train()` returned, the logs' writer (None in every process but the first) and the
    trainer's log history, for the stage's own closing figures.
    """
    from components.common.checkpoints import checkpoint_to_resume, remove_event_files, steps_done
    from components.common.trainer.logs import trainer_logs_writer
    from components.common.trainer.sharding import trained_model

    resumed_from = checkpoint_to_resume(checkpoint_dir, processes) if checkpoint_dir else None
    if processes.is_main:
        remove_event_files(log_dir)  # a resumed run writes its logs again, from the checkpoint's history
    logs = trainer_logs_writer(log_dir, renamed_tags) if processes.is_main else None
    callbacks = [logs] if logs is not None else []
    checkpoint_steps = checkpoint_interval(checkpoint_interval_steps, steps, logging_steps) if checkpoint_dir else 0
    trainer = build(Path(trainer_dir), callbacks, checkpoint_steps)
    if checkpoint_dir:
        trainer.add_callback(checkpoint_bookkeeping(trainer, checkpoint_dir, processes, resumed_from))
    if resumed_from is not None and processes.is_main:
        print(f"resuming {stage} from step {steps_done(resumed_from)} of {steps} (checkpoint {resumed_from})",
              flush=True)
    result = trainer.train(resume_from_checkpoint=str(resumed_from) if resumed_from else None)
    model = trained_model(trainer, whole_model, processes.is_main)
    if processes.is_main:
        save(model)
    history = trainer.state.log_history
    del trainer, model  # its memory is free before the stage evaluates
    processes.wait_for_everyone()
    return result, logs, history
