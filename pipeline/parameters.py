"""Every parameter of the pipeline: name, type, default and the description the pipeline UI shows.

This list is the single source: the `@dsl.pipeline` function's signature and docstring are built
from it (pipeline/dag.py), so compile output, local runs and submission checks always agree.
The first 19 names and types are exactly those of Vertex AI's `rlhf_pipeline`, so a
`parameter_values` dict written for Vertex runs this pipeline unchanged.
"""

from dataclasses import dataclass
from typing import Any, Optional

from components.common import defaults
from components.common.data.formats import AUTO
from components.common.data.lengths import TRUNCATE
from components.common.data.loading import DEFAULT_MAX_BAD_ROW_FRACTION
from components.common.steps import DEFAULT_BATCH_SIZE
from components.common.vertex_placeholders import LOCATION_PLACEHOLDER, PROJECT_PLACEHOLDER
from pipeline.resources import (DEFAULT_ACCELERATOR_COUNT, DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT,
                                DEFAULT_REPLICA_COUNT, GPU)

REQUIRED = object()  # marks a parameter without a default


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: Any  # str, int, float, bool or Optional[str]
    default: Any
    description: str

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


VERTEX_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("prompt_dataset", str, REQUIRED,
              "Prompts for the reinforcement-learning stage: JSONL rows with `input_text` (Vertex text "
              "format), `prompt` or `messages`. A local path, a glob, a gs:// URI, a local folder of datasets' "
              "`save_to_disk`, or a Hugging Face dataset `hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]` (split "
              "`train` by default)."),
    Parameter("preference_dataset", str, REQUIRED,
              "Human preference pairs for the reward model: JSONL rows with `input_text`, `candidate_0`, "
              "`candidate_1` and `choice` (Vertex format), or `prompt`, `chosen`, `rejected`. From any "
              "location `prompt_dataset` takes, e.g. `hf://datasets/OWNER/NAME`."),
    Parameter("large_model_reference", str, REQUIRED,
              "The base model: a Hugging Face model id, a local directory, a gs:// path, a Vertex name "
              "with an open equivalent (e.g. `llama-2-7b`), or a built-in tiny model: `builtin:tiny-summarizer` "
              "(the embedded sample task) or `builtin:tiny-arithmetic` (a chat model for word problems)."),
    Parameter("model_display_name", Optional[str], None,
              "Display name of the tuned model when it is uploaded to the Vertex Model Registry. "
              "Defaults to a name derived from the base model."),
    Parameter("prompt_sequence_length", int, defaults.PROMPT_SEQUENCE_LENGTH,
              "Maximum number of prompt tokens; longer prompts keep their last tokens."),
    Parameter("target_sequence_length", int, defaults.TARGET_SEQUENCE_LENGTH,
              "Maximum number of tokens of a response, in the preference data and when the policy "
              "generates."),
    Parameter("reward_model_learning_rate_multiplier", float, 1.0,
              "Multiplies the reward model's base learning rate (1e-4)."),
    Parameter("reinforcement_learning_rate_multiplier", float, 1.0,
              "Multiplies the policy's base learning rate (1e-5), for RL and DPO/KTO alike."),
    Parameter("reward_model_train_steps", int, 0,
              "Reward-model optimizer steps at batch size `batch_size`. 0 derives them from the data: "
              "ceil(training pairs / batch_size) * reward_model_train_epochs."),
    Parameter("reinforcement_learning_train_steps", int, 0,
              "Policy-tuning steps: RL steps on `batch_size` prompts (GRPO/RLOO: responses) or DPO/KTO "
              "steps on `batch_size` pairs. 0 derives them from the data: ceil(training prompts (pairs) / "
              "batch_size) * reinforcement_learning_train_epochs."),
    Parameter("kl_coeff", float, defaults.KL_COEFF,
              "Weight of the KL penalty to the initial policy in the reward. 0 disables the penalty and "
              "the reference model is not loaded."),
    Parameter("instruction", Optional[str], None,
              "Text prepended to every prompt, e.g. 'Summarize in less than 50 words'."),
    Parameter("deploy_model", bool, True,
              "On Vertex, upload the tuned model to the Model Registry and deploy it to an endpoint."),
    Parameter("eval_dataset", Optional[str], None,
              "Optional held-out data. Preference rows measure the reward model; prompt rows are "
              "answered by the base and the tuned policy for the evaluation report. Without it, a "
              "deterministic share (`eval_split_fraction`) of each dataset is held out. From any location "
              "`prompt_dataset` takes, e.g. `hf://datasets/OWNER/NAME@test`."),
    Parameter("project", str, PROJECT_PLACEHOLDER,
              "Google Cloud project for uploads and TensorBoard. Defaults to the run's project."),
    Parameter("location", str, LOCATION_PLACEHOLDER,
              "Google Cloud region for uploads and TensorBoard. Defaults to the run's region."),
    Parameter("accelerator_type", str, GPU,
              "Accelerator of the training steps: 'GPU' (resolved by `rlhf-pipeline submit` to "
              "NVIDIA_TESLA_A100 on Vertex, nvidia.com/gpu on Kubeflow) or an explicit Vertex name such as "
              "NVIDIA_L4. A run started from the console must name the accelerator. 'TPU' is refused: "
              "the trainers are PyTorch. Local runs use CUDA when present, else the CPU."),
    Parameter("encryption_spec_key_name", str, "",
              "Customer-managed encryption key for the job and the uploaded model."),
    Parameter("tensorboard_resource_id", str, "",
              "Vertex TensorBoard instance to which the training logs are uploaded."),
)

OUR_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("reward_model_reference", str, "",
              "A different base model for the reward model (it may use another tokenizer: it scores "
              "decoded text). Empty: the same model as `large_model_reference`."),
    Parameter("dataset_format", str, AUTO,
              "Layout of the preference dataset: auto (detected from the first rows), vertex-text, "
              "vertex-chat, explicit, implicit, scored, ranking or unpaired."),
    Parameter("max_bad_row_fraction", float, DEFAULT_MAX_BAD_ROW_FRACTION,
              "Share of a dataset's rows that may be wrong (malformed JSON, missing, empty or wrong-type "
              "field, bad choice, identical answers, not UTF-8...) before its data stage fails with a "
              "summary of the reasons and the first rows; below it they go to rejects.jsonl with file, "
              "line, field and reason."),
    Parameter("length_policy", str, TRUNCATE,
              "What happens to a prompt over prompt_sequence_length or an answer over "
              "target_sequence_length tokens: 'truncate' (a prompt keeps its last tokens, an answer its "
              "first) or 'drop'. Counted in the data report either way."),
    Parameter("use_margin", bool, False,
              "Use each pair's margin (scored pairs, rankings by score) in the reward loss, "
              "-log sigmoid(r_chosen - r_rejected - margin)."),
    Parameter("reward_model_train_epochs", int, 1,
              "Passes over the training pairs when `reward_model_train_steps` is 0."),
    Parameter("reinforcement_learning_train_epochs", int, 1,
              "Passes over the training prompts (DPO/KTO: pairs) when `reinforcement_learning_train_steps` is 0."),
    Parameter("batch_size", int, DEFAULT_BATCH_SIZE,
              "Pairs per reward-model step and prompts per PPO rollout (Vertex uses 64)."),
    Parameter("center_rewards_coefficient", float, defaults.CENTER_REWARDS_COEFFICIENT,
              "Reward model: adds this times the mean of (r_chosen + r_rejected)^2 to the pairwise loss, "
              "which keeps the rewards centred on 0 (TRL RewardConfig's `center_rewards_coefficient`; 0.01 is "
              "the usual choice). 0 turns it off."),
    Parameter("reward_model_lora_rank", int, defaults.REWARD_MODEL_LORA_RANK,
              "LoRA rank of the reward model (Vertex uses 4). 0 trains every weight."),
    Parameter("policy_lora_rank", int, defaults.POLICY_LORA_RANK,
              "LoRA rank of the policy (Vertex uses 1). 0 trains every weight."),
    Parameter("ppo_epochs", int, defaults.PPO_EPOCHS, "PPO optimisation passes over each rollout batch."),
    Parameter("ppo_minibatch_size", int, defaults.PPO_MINIBATCH_SIZE, "Rollouts per PPO gradient step."),
    Parameter("algorithm", str, defaults.ALGORITHM,
              "How the policy is tuned. Online RL against the reward model and/or `reward_function`: 'ppo' "
              "(value head, GAE, clipped surrogate), 'grpo' (group-normalised advantages over "
              "`num_generations` responses per prompt, no critic) or 'rloo' (leave-one-out baseline over "
              "them). Offline on the preference pairs, without reward model or RL: 'dpo' (TRL's DPOTrainer) "
              "or 'kto' (TRL's KTOTrainer, each pair split into a desirable and an undesirable answer)."),
    Parameter("reward_function", str, "",
              "Online RL: a rule reward added to the reward model's score. Empty: the reward model alone. "
              "A built-in (`boxed-answer`: the last \\boxed{} equals the prompt's `ground_truth`; "
              "`gsm8k-answer`: the `#### N` convention) or a user function `path/to/file.py:name` or "
              "`package.module:name` with TRL GRPOTrainer's signature. With a reward function and an empty "
              "preference_dataset no reward model is trained."),
    Parameter("train_reward_model_for_eval", bool, defaults.TRAIN_REWARD_MODEL_FOR_EVAL,
              "DPO/KTO: still train the reward model on the pairs, only to judge base and tuned policy in "
              "the evaluation, so that the figures compare with PPO/GRPO runs."),
    Parameter("dpo_beta", float, defaults.DPO_BETA,
              "DPO/KTO: strength of the implicit KL penalty to the reference (base) policy, TRL's `beta`."),
    Parameter("dpo_loss_type", str, defaults.DPO_LOSS_TYPE,
              "DPO: the loss, as TRL names it ('sigmoid' is the DPO paper's; 'ipo', 'hinge', 'robust', ...), or several "
              "joined by commas and summed ('sigmoid,sft': DPO plus the chosen answers' log-likelihood, as RPO)."),
    Parameter("kto_desirable_weight", float, defaults.KTO_DESIRABLE_WEIGHT,
              "KTO: weight of the desirable (chosen) answers' loss."),
    Parameter("kto_undesirable_weight", float, defaults.KTO_UNDESIRABLE_WEIGHT,
              "KTO: weight of the undesirable (rejected) answers' loss. The KTO paper advises "
              "desirable_weight * desirable rows / (undesirable_weight * undesirable rows) in [1, 4/3]; "
              "the stage reports the ratio."),
    Parameter("sft_dataset", str, "",
              "Optional supervised fine-tuning of the base model before every other stage: a dataset (file, "
              "directory, glob, gs:// or `hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]`, as `prompt_dataset`) of "
              "`prompt` + `completion` rows (strings, or the prompt as messages) or `messages` conversations "
              "whose last (assistant) reply is learnt, or `preference:chosen` (the chosen answers of the "
              "training pairs). The loss covers completions only. Its output is the base and the reference "
              "policy of every later stage. Empty: skipped."),
    Parameter("sft_train_epochs", int, defaults.SFT_TRAIN_EPOCHS,
              "Supervised fine-tuning: passes over the `sft_dataset` examples, ceil(examples / batch_size) x "
              "epochs steps of `batch_size` examples."),
    Parameter("sft_learning_rate_multiplier", float, 1.0,
              "Multiplies supervised fine-tuning's base learning rate (2e-5, every weight trained, 3% warm-up "
              "then linear decay)."),
    Parameter("num_generations", int, defaults.NUM_GENERATIONS,
              "GRPO/RLOO: responses sampled per prompt. `batch_size` then counts responses (a multiple of "
              "it), so each step takes batch_size / num_generations prompts; PPO ignores it."),
    Parameter("loss_type", str, defaults.LOSS_TYPE,
              "GRPO/RLOO: the loss, as TRL names it. Token losses averaged over every token of the minibatch "
              "('dapo'), per response then over responses ('grpo') or summed over a fixed length ('dr_grpo'); "
              "or, for RLOO, 'sequence': TRL RLOOTrainer's loss, one clipped probability ratio per response "
              "from its summed log-probabilities, averaged over responses. 'auto': each algorithm's own in "
              "TRL, 'dapo' for GRPO and 'sequence' for RLOO."),
    Parameter("epsilon", float, defaults.EPSILON,
              "PPO, GRPO and RLOO: the probability ratio is clipped below at 1 - epsilon (TRL's `epsilon`, "
              "PPO's clip range)."),
    Parameter("epsilon_high", float, defaults.EPSILON_HIGH,
              "PPO, GRPO and RLOO: the ratio is clipped above at 1 + epsilon_high (DAPO's clip-higher); 0 means "
              "epsilon."),
    Parameter("scale_rewards", str, defaults.SCALE_REWARDS,
              "GRPO: advantages are divided by the standard deviation of the prompt's group ('group'), of "
              "the whole batch ('batch'), or not at all ('none', Dr. GRPO)."),
    Parameter("sampling_temperature", float, 1.0, "Sampling temperature of the PPO rollouts."),
    Parameter("missing_eos_penalty", float, defaults.MISSING_EOS_PENALTY,
              "Subtracted from the reward of a PPO response that reached target_sequence_length without "
              "its end token, so that the policy learns to finish its answers (1.0 is a common choice). "
              "The evaluation reports the share of such truncated responses."),
    Parameter("use_chat_template", str, defaults.USE_CHAT_TEMPLATE,
              "How prompts reach each model (the policy and the reward model decide separately): 'auto' "
              "renders them with the model's chat template when its tokenizer has one (conversations "
              "as they are, plain-text prompts as one user message), 'true' requires a template, "
              "'false' feeds plain text (conversations as 'Human: ... Assistant:' transcripts)."),
    Parameter("system_prompt", str, "",
              "A system message put before every prompt that has none (a conversation's own system message "
              "wins), in every stage: a model with a chat template reads [system, user], a model without one "
              "reads the text as the prompt's first paragraph. Applied after `instruction`, which goes into "
              "the user's message. Empty: prompts are left as they came."),
    Parameter("eval_split_fraction", float, defaults.EVAL_SPLIT_FRACTION,
              "Share of the preference pairs (and of the prompts) held out for evaluation when no "
              "`eval_dataset` provides them; 0 needs an `eval_dataset` (of preference pairs when "
              "`preference_dataset` is set)."),
    Parameter("max_eval_prompts", int, defaults.MAX_EVAL_PROMPTS,
              "At most this many held-out prompts are answered by both policies in the evaluation."),
    Parameter("gold_scorer", str, "",
              "Name of a task's known preference function used to grade the generations in the "
              "report (e.g. `sample-summaries` for the embedded task). Empty: none."),
    Parameter("accelerator_count", int, DEFAULT_ACCELERATOR_COUNT,
              "GPUs per training step; with more than one the step trains on all of them, one process "
              "per GPU (batch_size and ppo_minibatch_size must be multiples of it)."),
    Parameter("replica_count", int, DEFAULT_REPLICA_COUNT,
              "Machines per training step, each with accelerator_count GPUs, training as one process group "
              "(torchrun across machines). Above 1, `rlhf-pipeline submit` runs each training step on that many "
              "machines: on Vertex AI as a custom job with worker pools (a primary machine and replica_count - 1 "
              "workers), on Kubeflow as a Kubeflow Trainer TrainJob of that many nodes sharing files on a volume "
              "(--shared-volume); local runs take 1."),
    Parameter("sharding", str, defaults.SHARDING,
              "How the processes of a training step on several GPUs share the models: 'none': each GPU holds "
              "whole copies (data parallel); 'fsdp': PyTorch FSDP2 shards the trained model's weights, "
              "gradients and optimizer state between the GPUs, decoder layer by decoder layer (the online RL "
              "step also its full-weight reference, and gathers the policy whole for generation; the "
              "TRL-trained steps through accelerate's FSDP plugin); 'auto': 'fsdp' when one copy's weights, "
              "gradients and Adam state would take more than half of a GPU."),
    Parameter("activation_checkpointing", bool, False,
              "Online RL step: recompute each decoder layer's activations in the update's backward pass "
              "instead of keeping them, for less memory and about a third more update compute (the "
              "TRL-trained steps always do)."),
    Parameter("rollout_engine", str, defaults.ROLLOUT_ENGINE,
              "What samples responses in the online RL step (PPO, GRPO, RLOO) and the evaluation: "
              "'transformers' (its generate), 'vllm' (a vLLM engine in each training process, given the "
              "policy's weights after every update; needs the vllm extra of the image) or 'auto': vLLM where "
              "it is installed and the model has 100M parameters or more, else transformers. The stage log "
              "says which."),
    Parameter("vllm_gpu_memory_utilization", float, defaults.VLLM_GPU_MEMORY_UTILIZATION,
              "Share of the GPU's memory the vLLM engine may take (its weights and KV cache) when it samples "
              "beside the trainer (rollout_engine)."),
    Parameter("importance_sampling_cap", float, defaults.IMPORTANCE_SAMPLING_CAP,
              "vLLM rollouts: each response's policy loss is weighted by the ratio of the trainer's and the "
              "engine's probability of it, and a response whose ratio exceeds this cap is left out (TRL's "
              "vllm_importance_sampling_correction, mode sequence_mask); 0 turns the correction off."),
    Parameter("cpu_limit", str, DEFAULT_CPU_LIMIT, "CPU limit of each training step ('8', '500m')."),
    Parameter("memory_limit", str, DEFAULT_MEMORY_LIMIT, "Memory limit of each training step ('32G', '64Gi')."),
    Parameter("checkpoint_interval_steps", int, 0,
              "Steps between two checkpoints of each training step (supervised fine-tuning, reward model, "
              "RL, DPO/KTO; 0: about every 10% of its steps; the Trainer-based ones' fall on their logging "
              "steps, every 5). A training step "
              "retried or run again with the same inputs resumes from its last checkpoint and ends as an "
              "uninterrupted run would."),
    Parameter("checkpoint_root", str, "",
              "Where the training steps keep their checkpoints: a gs:// URI (through Vertex's /gcs/ mount) or "
              "a folder every training step can write, one subfolder per task and inputs, deleted when the "
              "step succeeds. Empty: `checkpoints/` under the pipeline root; `rlhf-pipeline run` uses "
              "`<output dir>/checkpoints`. A Kubeflow pipeline root that is not gs:// gives no checkpoints."),
    Parameter("seed", int, 0, "Seed of every random choice: data split, initialisation, sampling."),
    Parameter("preference_data_fingerprint", str, "",
              "Filled in automatically by `rlhf-pipeline run` and `submit`; leave it empty. A fingerprint of "
              "the files preference_dataset and eval_dataset name (name, size and SHA-256 of local files; "
              "name, generation and size of gs:// objects; a hub dataset's id and the fingerprint `datasets` "
              "gives its revision), so that the preference-data step's cache reruns it when the data changes "
              "in place."),
    Parameter("prompt_data_fingerprint", str, "",
              "Filled in automatically by `rlhf-pipeline run` and `submit`; leave it empty. The same for the "
              "files prompt_dataset and eval_dataset name and the prompt-data step."),
    Parameter("sft_data_fingerprint", str, "",
              "Filled in automatically by `rlhf-pipeline run` and `submit`; leave it empty. The same for the "
              "files sft_dataset names and the supervised fine-tuning step."),
)

PARAMETERS: tuple[Parameter, ...] = VERTEX_PARAMETERS + OUR_PARAMETERS
PARAMETERS_BY_NAME: dict[str, Parameter] = {p.name: p for p in PARAMETERS}


def defaults() -> dict[str, Any]:
    """The default value of every parameter that has one."""
    return {p.name: p.default for p in PARAMETERS if not p.required}


def type_name(annotation: Any) -> str:
    """`str`, `int`, `float`, `bool` or `Optional[str]`, as the README and `rlhf-pipeline params` show it."""
    return "Optional[str]" if annotation == Optional[str] else annotation.__name__


def markdown_table() -> str:
    """The parameter table of README.md (a test keeps the two equal)."""
    rows = ["| name | type | default | description |", "|---|---|---|---|"]
    for p in PARAMETERS:
        default = "required" if p.required else f"`{p.default!r}`"
        rows.append(f"| `{p.name}` | {type_name(p.annotation)} | {default} | {p.description} |")
    return "\n".join(rows)
