"""Optional supervised fine-tuning (SFT) of the base model, before the reward model and RL."""
