"""Default values that the pipeline's parameters (pipeline/parameters.py) and the stages' configs
share: each is written here once. Most are those of Vertex AI's own RLHF pipeline."""

PROMPT_SEQUENCE_LENGTH = 512  # prompt tokens (Vertex: prompt_sequence_length)
TARGET_SEQUENCE_LENGTH = 64  # response tokens (Vertex: target_sequence_length)
POLICY_BASE_LEARNING_RATE = 1e-5  # the policy's rate before reinforcement_learning_rate_multiplier (Vertex's base rate)
KL_COEFF = 0.1  # weight of the KL penalty to the initial policy (Vertex: kl_coeff)
REWARD_MODEL_LORA_RANK = 4  # Vertex's reward-model LoRA rank
CENTER_REWARDS_COEFFICIENT = 0.0  # reward model: weight of the mean squared reward in the loss (0: off, as TRL's None)
POLICY_LORA_RANK = 1  # Vertex's policy LoRA rank
PPO_EPOCHS = 4  # optimisation passes over each rollout batch
PPO_MINIBATCH_SIZE = 16  # rollouts per PPO optimizer step
EVAL_SPLIT_FRACTION = 0.1  # share of each dataset held out when no eval_dataset is given
MAX_EVAL_PROMPTS = 200  # held-out prompts answered by both policies in the evaluation
MISSING_EOS_PENALTY = 0.0  # subtracted from the reward of a response cut at the length limit (TRL's recipe: 1.0)
USE_CHAT_TEMPLATE = "auto"  # render conversations with each model's chat template when it has one
ALGORITHM = "ppo"  # online RL algorithm of the policy stage: "ppo", "grpo" or "rloo"
NUM_GENERATIONS = 4  # GRPO/RLOO: responses sampled per prompt
LOSS_TYPE = "auto"  # GRPO/RLOO loss: "auto" is each trainer's own in TRL, dapo for GRPO, sequence for RLOO
EPSILON = 0.2  # lower clip of the probability ratio, 1 - epsilon (PPO, GRPO, RLOO)
EPSILON_HIGH = 0.0  # upper clip, 1 + epsilon_high; 0 means the same as epsilon
SHARDING = "auto"  # training steps: FSDP2 when a replica would not fit (components/common/sharding.py)
SCALE_REWARDS = "group"  # GRPO: what advantages are divided by (TRL's name)
TRAIN_REWARD_MODEL_FOR_EVAL = True  # DPO/KTO: still train a reward model, to judge base and tuned policy
DPO_BETA = 0.1  # DPO/KTO: strength of the implicit KL to the reference (TRL's beta)
DPO_LOSS_TYPE = "sigmoid"  # DPO loss, TRL's name
KTO_DESIRABLE_WEIGHT = 1.0  # KTO: weight of the desirable (chosen) rows' loss
KTO_UNDESIRABLE_WEIGHT = 1.0  # KTO: weight of the undesirable (rejected) rows' loss
PREFERENCE_TUNING_TRAIN_EPOCHS = 1  # DPO/KTO: passes over the training pairs when steps are derived
SFT_TRAIN_EPOCHS = 1  # supervised fine-tuning: passes over its dataset
ROLLOUT_ENGINE = "auto"  # online RL and evaluation sampling: vLLM where installed (components/common/vllm_rollouts.py)
VLLM_GPU_MEMORY_UTILIZATION = 0.3  # share of a GPU's memory the colocated vLLM engine may take (TRL's colocate default)
IMPORTANCE_SAMPLING_CAP = 3.0  # vLLM rollouts: responses whose trainer/engine ratio exceeds it leave the loss (TRL's)
