"""TensorBoard logs of the stages trained with a Hugging Face (TRL) Trainer.

Every number the Trainer logs is written under the name TRL logs it (`loss`, `learning_rate`,
`grad_norm`, `rewards/chosen`, `mean_token_accuracy`, ...), except where a stage renames a tag (the
reward model writes `loss` as Vertex's `rank_loss`).
"""

from pathlib import Path


def trainer_logs_writer(log_dir: str | Path, renamed: dict[str, str] | None = None):
    """A TrainerCallback writing the trainer's logs to event files in `log_dir`, `renamed` applied.

    A resumed run first writes again what the Trainer logged before its checkpoint (the stages
    delete the killed attempt's event files), so that the logs hold every step once.
    """
    from torch.utils.tensorboard import SummaryWriter
    from transformers import TrainerCallback

    names = renamed or {}

    class TrainerLogsWriter(TrainerCallback):
        def __init__(self):
            self.writer = SummaryWriter(str(log_dir))

        def write(self, logs: dict, step: int) -> None:
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(names.get(key, key), value, step)

        def on_train_begin(self, args, state, control, **kwargs):
            for logged in state.log_history:  # empty unless resumed
                self.write({key: value for key, value in logged.items() if key != "step"}, logged["step"])

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.write(logs or {}, state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            self.writer.flush()

    return TrainerLogsWriter()
