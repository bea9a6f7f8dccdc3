"""Stage 2: prompts for the reinforcement-learning stage, validated and split."""
