"""Stage 1: preference pairs for the reward model, validated and split."""
