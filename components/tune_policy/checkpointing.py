"""Policy-tuning checkpoints (PPO, GRPO, RLOO): all a resumed run needs to go on exactly as the killed
one would have.

A checkpoint after `steps_done` steps holds the trainable weights (LoRA adapters and, for PPO, the value
head, or every weight when lora_rank is 0), the optimizer and the learning-rate schedule, each process's
random states (the global CPU and CUDA generators, which sampling draws from, and the generator of
the minibatch order), and in its marker the loop's progress: the position in the prompt order,
every step's statistics and the samples logged so far, so that the final metrics and the TensorBoard
log equal an uninterrupted run's.

The trainable weights and the optimizer state are written by torch.distributed.checkpoint: every
process writes its own shards when the policy is sharded (FSDP2), the first process alone what DDP
keeps equal in every process; loading puts each shard back in its process. The first process writes
the schedule, each process its own random states. Every process loads.
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

TRAINING_STATE_DIR = "training_state"  # trainable weights and optimizer state (torch.distributed.checkpoint)
SCHEDULER_FILE = "scheduler.pt"


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


def _training_state(state: "TrainingState") -> dict[str, dict]:
    """The trainable weights (frozen ones are the base model's, never saved) and the optimizer's state,
    by parameter name, as torch.distributed.checkpoint saves and loads them (sharded or whole)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    weights, optimizer = get_state_dict(state.policy, state.optimizer, options=StateDictOptions(ignore_frozen_params=True))
    return {"weights": weights, "optimizer": optimizer}


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
    import torch.distributed.checkpoint as dcp

    processes = state.processes
    checkpoint = checkpoint_path(folder, progress.steps_done)
    checkpoint.mkdir(parents=True, exist_ok=True)
    torch.save(_random_states(state.minibatch_order), _random_states_file(checkpoint, processes.rank))
    dcp.save(_training_state(state), checkpoint_id=checkpoint / TRAINING_STATE_DIR, no_dist=processes.count == 1)
    if processes.is_main:
        torch.save(state.scheduler.state_dict(), checkpoint / SCHEDULER_FILE)
    processes.wait_for_everyone()
    if processes.is_main:
        record = {"processes": processes.count, "prompt_order": state.prompt_batches.state(), **asdict(progress)}
        mark_complete(checkpoint, record)
        remove_older_checkpoints(folder, checkpoint)


def load_checkpoint(checkpoint: Path, state: TrainingState) -> Progress:
    """Put `state` back where it stood at `checkpoint`, and return the loop's record then."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    saved = _training_state(state)  # the shapes and shards to load into
    dcp.load(saved, checkpoint_id=checkpoint / TRAINING_STATE_DIR, no_dist=state.processes.count == 1)
    set_state_dict(state.policy, state.optimizer, model_state_dict=saved["weights"],
                   optim_state_dict=saved["optimizer"],
                   # the frozen weights stay as loaded; dcp.load has already refused a missing trainable one
                   options=StateDictOptions(ignore_frozen_params=True, strict=False))
    state.scheduler.load_state_dict(torch.load(checkpoint / SCHEDULER_FILE, weights_only=True))
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
