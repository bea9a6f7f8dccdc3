"""Policy-tuning checkpoints (PPO, GRPO, RLOO): all a resumed run needs to go on exactly as the killed
one would have.

A checkpoint after `steps_done` steps holds the trainable weights (LoRA adapters and, for PPO, the value
head, or every weight when lora_rank is 0), the optimizer and the learning-rate schedule, each process's
random states (the global CPU and CUDA generators, which sampling draws from, and the generator of
the minibatch order), and in its marker the loop's progress: the position in the prompt order,
every step's statistics and the samples logged so far, so that the final metrics and the TensorBoard
log equal an uninterrupted run's.

Only the first process writes what every process holds alike (DDP keeps the weights and optimizer
states equal); each process writes its own random states. Every process loads.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from components.common.checkpoints import (
    checkpoint_path,
    checkpoint_to_resume,
    mark_complete,
    read_marker,
    remove_older_checkpoints,
)
from components.common.distributed import TrainingProcesses
from components.tune_policy.policy_model import PolicyWithValueHead
from components.tune_policy.prompt_data import PromptBatches

WEIGHTS_FILE = "trainable_weights.pt"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class Progress:
    """The training loop's record: steps done, each step's statistics, the samples logged to TensorBoard."""

    steps_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    samples: list[tuple[int, str]] = field(default_factory=list)  # (step, text)

    def record(self, stats: dict[str, float], samples: str | None) -> None:
        """Count one more step done, with its statistics and its logged samples, if any."""
        if samples is not None:
            self.samples.append((self.steps_done, samples))
        self.history.append(stats)
        self.steps_done += 1


@dataclass
class TrainingState:
    """What the training loop changes besides its record, all saved in a checkpoint."""

    policy: PolicyWithValueHead
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    minibatch_order: torch.Generator
    prompt_batches: PromptBatches
    processes: TrainingProcesses


def _random_states_file(checkpoint: Path, rank: int) -> Path:
    return checkpoint / f"random_states_{rank}.pt"


def _named_trainable_parameters(policy: PolicyWithValueHead) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in policy.named_parameters() if p.requires_grad}


def _random_states(minibatch_order: torch.Generator) -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state(), "minibatch_order": minibatch_order.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()  # this process's GPU
    return states


def _restore_random_states(states: dict[str, torch.Tensor], minibatch_order: torch.Generator) -> None:
    torch.set_rng_state(states["cpu"])
    minibatch_order.set_state(states["minibatch_order"])
    if "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"])


def save_checkpoint(folder: str | Path, progress: Progress, state: TrainingState) -> None:
    """Save a checkpoint after `progress.steps_done` steps; then drop the older one.

    Every process takes part; the marker is written once all of them have written their files.
    Reading states consumes no random numbers, so a run with checkpoints equals one without.
    """
    processes = state.processes
    checkpoint = checkpoint_path(folder, progress.steps_done)
    checkpoint.mkdir(parents=True, exist_ok=True)
    torch.save(_random_states(state.minibatch_order), _random_states_file(checkpoint, processes.rank))
    if processes.is_main:
        weights = {name: p.detach() for name, p in _named_trainable_parameters(state.policy).items()}
        torch.save(weights, checkpoint / WEIGHTS_FILE)
        optimization = {"optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict()}
        torch.save(optimization, checkpoint / OPTIMIZER_FILE)
    processes.wait_for_everyone()
    if processes.is_main:
        record = {"processes": processes.count, "prompt_order": state.prompt_batches.state(), **asdict(progress)}
        mark_complete(checkpoint, record)
        remove_older_checkpoints(folder, checkpoint)


def load_checkpoint(checkpoint: Path, state: TrainingState) -> Progress:
    """Put `state` back where it stood at `checkpoint`, and return the loop's record then."""
    saved = torch.load(checkpoint / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    parameters = _named_trainable_parameters(state.policy)
    if saved.keys() != parameters.keys():
        raise ValueError(f"{checkpoint} holds other trainable weights than this policy has")
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(saved[name])
    # On the CPU: load_state_dict moves each state to its parameter's device, except Adam's step counts.
    optimization = torch.load(checkpoint / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(optimization["optimizer"])
    state.scheduler.load_state_dict(optimization["scheduler"])
    random_states = torch.load(_random_states_file(checkpoint, state.processes.rank), weights_only=True)
    _restore_random_states(random_states, state.minibatch_order)
    record = read_marker(checkpoint)
    state.prompt_batches.restore(record["prompt_order"])
    samples = [(step, text) for step, text in record["samples"]]
    return Progress(steps_done=record["steps_done"], history=record["history"], samples=samples)


def resume(folder: str | Path, state: TrainingState, total_steps: int, algorithm: str = "PPO") -> Progress:
    """The loop's record restored from the newest usable checkpoint in `folder`, or a fresh one."""
    checkpoint = checkpoint_to_resume(folder, state.processes)
    if checkpoint is None:
        return Progress()
    progress = load_checkpoint(checkpoint, state)
    if state.processes.is_main:
        print(f"resuming {algorithm} from step {progress.steps_done} of {total_steps} (checkpoint {checkpoint})", flush=True)
    return progress
