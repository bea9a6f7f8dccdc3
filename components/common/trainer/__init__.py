"""What the stages trained with TRL's trainers (reward model, SFT, DPO/KTO) share: Trainer arguments,
checkpoints and resume, logs, and the start and finish of a training stage."""
