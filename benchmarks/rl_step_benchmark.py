"""Benchmark of one GRPO step: ours (components/tune_policy) against TRL's GRPOTrainer, at matched work.

    python benchmarks/rl_step_benchmark.py [--steps 14] [--warmup-steps 2] [--epochs 4] [--threads 1]
                                           [--model DIR] [--json PATH]

Both tune the same tiny Llama (the sample task's `builtin:tiny-summarizer`, built offline into a
temporary directory, or `--model DIR`) from the same saved weights, in this one process, fp32 on the
CPU with the same torch thread count, on the same prompts in the same order, with the same reward
function (the sample task's gold score, a plain Python function of the prompt and completion text).

Matched work per RL step: 16 prompts x 4 generations = 64 completions of at most `--max-new-tokens`
tokens, sampled at temperature 1 with no top-k/top-p; reference log-probs from a second, frozen copy
of the initial weights (KL coefficient = TRL's beta); then `--epochs` passes over the 64 completions
in minibatches of 16, one AdamW step each (ours: ppo_epochs / minibatch_size 16 / forward_batch_size
16; TRL: num_iterations / per_device_train_batch_size 16 x gradient_accumulation_steps 1,
steps_per_generation 4); the same loss_type, epsilon, scale_rewards, learning rate (constant, no
warmup), max_grad_norm and full-weight training.

Interleaving: TRL's `train()` drives its loop; a callback, at the end of each of TRL's RL steps
(every 4 x epochs optimizer steps), runs one step of ours. TRL's step time is the wall time from the
end of our previous step to that callback (everything the Trainer does, logging included); ours is
rollout + update + step statistics. The first `--warmup-steps` of each are left out of the medians.

Reward gain per unit KL: before training and after the last step, each policy samples `--eval-samples`
answers (default 4) to each of the sample task's 200 held-out eval prompts with the same sampler (ours,
plain temperature-1 sampling) and seed; reward is the mean gold score, KL the mean over answers of
sum(log p_policy - log p_initial) over the answer's tokens (the k3 estimate is reported too).
Gain per KL = (reward after - reward before) / KL after.

Prints a table and writes the figures as JSON. Exits non-zero when a target is missed (ours >= 1.5x
faster, and reward gain per unit KL at least TRL's).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_SPEEDUP = 1.5
PROMPTS_PER_STEP = 16
NUM_GENERATIONS = 4
MINIBATCH_SIZE = 16  # completions per optimizer step, both engines
EVAL_SEED = 1234


def gold_reward(prompts, completions, **kwargs):
    """The sample task's gold score of each completion: a plain reward function, as TRL calls one."""
    from embedded_default.gold import gold_score

    return [gold_score(prompt, completion) for prompt, completion in zip(prompts, completions)]


def prompt_texts(path: Path, instruction: str) -> list[str]:
    from components.common.prompts import apply_instruction

    with open(path, encoding="utf-8") as handle:
        return [apply_instruction(json.loads(line)["input_text"], instruction) for line in handle if line.strip()]


def build_model(directory: Path) -> Path:
    from embedded_default.tiny_model import build_tiny_model

    return build_tiny_model(directory, seed=0, progress=False)


class Ours:
    """Our GRPO engine, driven one step at a time with the functions train_policy calls."""

    def __init__(self, model_dir: Path, prompts_file: Path, args):
        from components.common.chat_templates import PromptFormatter
        from components.common.models import Placement, load_tokenizer
        from components.common.reward_functions import load_reward_function
        from components.tune_policy.config import PPOConfig
        from components.tune_policy.optimization import build_optimizer
        from components.tune_policy.policy_model import load_policy, make_reference
        from components.tune_policy.prompt_data import read_training_rows
        from components.tune_policy.rewards import RolloutRewards

        import torch

        self.config = PPOConfig(
            steps=args.warmup_steps + args.steps, algorithm="grpo", num_generations=NUM_GENERATIONS,
            loss_type=args.loss_type, epsilon=args.epsilon, epsilon_high=0.0, scale_rewards="group",
            batch_size=PROMPTS_PER_STEP * NUM_GENERATIONS, minibatch_size=MINIBATCH_SIZE,
            forward_batch_size=MINIBATCH_SIZE, ppo_epochs=args.epochs, base_learning_rate=args.learning_rate,
            lr_schedule="constant", warmup_fraction=0.0, weight_decay=0.0, max_grad_norm=1.0,
            kl_coeff=args.kl_coeff, missing_eos_penalty=0.0, use_chat_template="auto", temperature=1.0,
            max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens, lora_rank=0, seed=args.seed,
        )
        placement = Placement.detect()
        self.tokenizer = load_tokenizer(str(model_dir), padding_side="left")
        self.formatter = PromptFormatter(self.tokenizer, self.config.use_chat_template, str(model_dir))
        self.rows = read_training_rows(prompts_file)  # in file order: the same order TRL reads them
        self.rewards = RolloutRewards(None, load_reward_function(f"{Path(__file__).resolve()}:gold_reward"),
                                      conversational=self.formatter.templated)
        self.policy = load_policy(str(model_dir), self.config, placement)
        self.reference = make_reference(self.policy, str(model_dir), self.config, placement)
        self.optimizer, self.scheduler = build_optimizer(self.policy, self.config)
        self.order = torch.Generator().manual_seed(args.seed)
        self.step_index = 0

    def step(self) -> dict[str, float]:
        from components.tune_policy.ppo import rollout_statistics
        from components.tune_policy.ppo_update import ppo_update
        from components.tune_policy.rollout import collect_rollout

        start = self.step_index * PROMPTS_PER_STEP % len(self.rows)
        rows = [row for row in self.rows[start:start + PROMPTS_PER_STEP] for _ in range(NUM_GENERATIONS)]
        began = time.perf_counter()
        rollout = collect_rollout(self.policy, self.reference, self.rewards, self.formatter,
                                  [row.prompt for row in rows], self.config, columns=[row.columns for row in rows])
        update = ppo_update(self.policy, self.optimizer, self.scheduler, rollout, self.config, self.order)
        stats = rollout_statistics(rollout, self.config.kl_coeff, num_generations=NUM_GENERATIONS)
        seconds = time.perf_counter() - began
        self.step_index += 1
        self.last_prompts = [row.prompt.text for row in rows]
        return {"seconds": seconds, "reward": stats["reward"], "completion_length": stats["response_length"],
                "kl_per_token_k3": update["kl_penalty"]}

    @property
    def model(self):
        return self.policy.language_model


def trl_trainer(model_dir: Path, prompts: list[str], args, callback):
    import datasets
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    passes = args.epochs * (PROMPTS_PER_STEP * NUM_GENERATIONS // MINIBATCH_SIZE)
    config = GRPOConfig(
        output_dir=str(args.work / "trl"), use_cpu=True, bf16=False, fp16=False, report_to="none",
        dataloader_num_workers=0, save_strategy="no", disable_tqdm=True, seed=args.seed,
        max_steps=(args.warmup_steps + args.steps) * passes, logging_steps=passes,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch",  # torch.optim.AdamW, as ours (not the fused variant)
        per_device_train_batch_size=MINIBATCH_SIZE, gradient_accumulation_steps=1,
        steps_per_generation=PROMPTS_PER_STEP * NUM_GENERATIONS // MINIBATCH_SIZE,
        num_generations=NUM_GENERATIONS, num_iterations=args.epochs, max_completion_length=args.max_new_tokens,
        temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
        beta=args.kl_coeff, epsilon=args.epsilon, loss_type=args.loss_type, scale_rewards="group",
        mask_truncated_completions=False, shuffle_dataset=False, log_completions=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = datasets.Dataset.from_list([{"prompt": text} for text in prompts])
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=gold_reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[callback])
    trainer.remove_callback(PrinterCallback)  # its log lines would drown the table; log_history keeps them
    return trainer


def make_interleaver(ours: Ours, args, passes: int):
    from transformers import TrainerCallback

    class Interleave(TrainerCallback):
        """After each of TRL's RL steps (every `passes` optimizer steps), time it and run one step of ours."""

        def __init__(self):
            self.trl_seconds: list[float] = []
            self.ours: list[dict[str, float]] = []
            self.mark = 0.0
            self.trainer = None  # set once the trainer exists
            self.same_prompts: list[bool] = []

        def on_train_begin(self, *a, **k):
            self.mark = time.perf_counter()

        def on_step_end(self, training_args, state, control, **kwargs):
            if state.global_step % passes:
                return
            self.trl_seconds.append(time.perf_counter() - self.mark)
            self.ours.append(ours.step())
            trl_prompts = list(self.trainer._logs["prompt"]) if self.trainer is not None else []
            self.same_prompts.append(sorted(trl_prompts) == sorted(ours.last_prompts))
            step = len(self.trl_seconds)
            print(f"  step {step:3d}{' (warm-up)' if step <= args.warmup_steps else '          '}  "
                  f"TRL {self.trl_seconds[-1]:6.2f} s   ours {self.ours[-1]['seconds']:6.2f} s", flush=True)
            self.mark = time.perf_counter()

    return Interleave()


def measure(model, reference, tokenizer, prompts: list[str], args) -> dict[str, float]:
    """Mean gold reward of sampled answers to `prompts`, and the mean KL of those answers to `reference`."""
    import torch

    from components.common.generation import generate_responses
    from components.common.log_probs import position_ids_for, token_log_probs
    from embedded_default.gold import gold_score

    was_training = model.training
    model.eval()
    torch.manual_seed(EVAL_SEED)
    rewards, kls, k3s = [], [], []
    with torch.no_grad():
        for start in range(0, len(prompts), 64):
            chunk = [p for p in prompts[start:start + 64] for _ in range(args.eval_samples)]
            batch = generate_responses(model, tokenizer, chunk, max_new_tokens=args.max_new_tokens,
                                       max_prompt_tokens=args.max_prompt_tokens, temperature=1.0)
            rewards += [gold_score(p, t) for p, t in zip(chunk, batch.texts)]
            length = batch.response_ids.shape[1]
            logps = []
            for lm in (model, reference):
                logits = lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            position_ids=position_ids_for(batch.attention_mask), logits_to_keep=length + 1,
                            use_cache=False).logits[:, :-1]
                logps.append(token_log_probs(logits, batch.response_ids))
            mask = batch.response_mask.float()
            delta = (logps[0] - logps[1]) * mask
            kls += delta.sum(dim=1).tolist()
            k3 = (torch.exp(-delta) + delta - 1) * mask
            k3s += (k3.sum(dim=1)).tolist()
    model.train(was_training)
    n = len(rewards)
    return {"reward": sum(rewards) / n, "kl": sum(kls) / n, "kl_k3": sum(k3s) / n, "answers": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=14, help="timed RL steps of each (after the warm-up)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps of each left out of the medians")
    parser.add_argument("--epochs", type=int, default=4, help="optimisation passes (ppo_epochs = num_iterations)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both")
    parser.add_argument("--max-new-tokens", type=int, default=56, help="completion length limit (sample task: 56)")
    parser.add_argument("--max-prompt-tokens", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=2e-4, help="sample task: 2e-4")
    parser.add_argument("--kl-coeff", type=float, default=0.05, help="our kl_coeff = TRL's beta (sample task: 0.05)")
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--loss-type", default="grpo", choices=("grpo", "dr_grpo", "dapo"))
    parser.add_argument("--eval-samples", type=int, default=4, help="sampled answers per eval prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="a saved causal LM directory (default: build the sample task's tiny model)")
    parser.add_argument("--json", default=str(Path(tempfile.gettempdir()) / "rl_step_benchmark.json"))
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import random

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from embedded_default import EVAL_FILE, PROMPT_FILE, load_params

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    passes = args.epochs * (PROMPTS_PER_STEP * NUM_GENERATIONS // MINIBATCH_SIZE)
    with tempfile.TemporaryDirectory(prefix="rl-step-bench-") as workdir:
        args.work = Path(workdir)
        started = time.perf_counter()
        model_dir = Path(args.model) if args.model else build_model(args.work / "model")
        built_seconds = time.perf_counter() - started
        instruction = load_params()["instruction"]
        prompts = prompt_texts(PROMPT_FILE, instruction)
        random.Random(args.seed).shuffle(prompts)  # one fixed order, read in turn by both
        prompts_file = args.work / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps({"prompt": text}) + "\n" for text in prompts))
        eval_prompts = prompt_texts(EVAL_FILE, instruction)

        tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        initial = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        parameters = sum(p.numel() for p in initial.parameters())
        built = "" if args.model else f", built in {built_seconds:.0f} s"
        print(f"model: {parameters} parameters ({model_dir}{built}); "
              f"torch threads {args.threads}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
        print(f"work per RL step: {PROMPTS_PER_STEP} prompts x {NUM_GENERATIONS} = "
              f"{PROMPTS_PER_STEP * NUM_GENERATIONS} completions of <= {args.max_new_tokens} tokens; "
              f"{args.epochs} passes x {PROMPTS_PER_STEP * NUM_GENERATIONS // MINIBATCH_SIZE} minibatches of "
              f"{MINIBATCH_SIZE} = {passes} optimizer steps; loss {args.loss_type}, beta {args.kl_coeff}, "
              f"lr {args.learning_rate}")
        before = measure(initial, initial, tokenizer, eval_prompts, args)

        ours = Ours(model_dir, prompts_file, args)
        interleave = make_interleaver(ours, args, passes)
        trainer = trl_trainer(model_dir, prompts, args, interleave)
        interleave.trainer = trainer
        trainer.train()
        trl_model = trainer.accelerator.unwrap_model(trainer.model)

        after = {"ours": measure(ours.model, initial, tokenizer, eval_prompts, args),
                 "trl": measure(trl_model, initial, tokenizer, eval_prompts, args)}

    timed = slice(args.warmup_steps, None)
    trl_logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    results = {"settings": {k: v for k, v in vars(args).items() if k != "work"},
               "model_parameters": parameters,
               "same_prompts_every_step": all(interleave.same_prompts), "before": before, "engines": {}}
    for name, seconds, per_step in (
        ("ours", [s["seconds"] for s in interleave.ours], interleave.ours),
        ("trl", interleave.trl_seconds, trl_logs),
    ):
        gain = after[name]["reward"] - before["reward"]
        results["engines"][name] = {
            "median_seconds_per_step": statistics.median(seconds[timed]),
            "seconds_per_step": seconds,
            "train_reward_per_step": [s["reward"] for s in per_step],
            "completion_length_per_step": [
                s.get("completion_length", s.get("completions/mean_length")) for s in per_step
            ],
            "after": after[name],
            "reward_gain": gain,
            "reward_gain_per_kl": gain / after[name]["kl"] if after[name]["kl"] > 0 else float("nan"),
        }
    ours_r, trl_r = results["engines"]["ours"], results["engines"]["trl"]
    speedup = trl_r["median_seconds_per_step"] / ours_r["median_seconds_per_step"]
    results["speedup_trl_over_ours"] = speedup
    speed_met = speedup >= TARGET_SPEEDUP
    efficiency_met = ours_r["reward_gain_per_kl"] >= trl_r["reward_gain_per_kl"]
    results["targets"] = {"speedup": TARGET_SPEEDUP, "speed_met": speed_met, "gain_per_kl_met": efficiency_met}

    print(f"\n{'':10}{'median s/step':>14}{'mean length':>12}{'reward':>9}{'gain':>9}{'KL':>9}{'KL k3':>9}"
          f"{'gain/KL':>9}")
    print(f"{'initial':10}{'':>14}{'':>12}{before['reward']:9.4f}{'':>9}{before['kl']:9.4f}{before['kl_k3']:9.4f}")
    for name, r in (("ours", ours_r), ("TRL 1.16", trl_r)):
        lengths = [x for x in r["completion_length_per_step"][timed] if x is not None]
        mean_length = statistics.mean(lengths) if lengths else float("nan")
        print(f"{name:10}{r['median_seconds_per_step']:14.3f}{mean_length:12.1f}"
              f"{r['after']['reward']:9.4f}{r['reward_gain']:9.4f}{r['after']['kl']:9.4f}{r['after']['kl_k3']:9.4f}"
              f"{r['reward_gain_per_kl']:9.3f}")
    print(f"\nspeed-up (TRL median / ours): {speedup:.2f}x over {args.steps} interleaved steps after "
          f"{args.warmup_steps} warm-up; reward and KL after {args.warmup_steps + args.steps} steps on "
          f"{before['answers']} sampled eval answers; same prompts each step: {all(interleave.same_prompts)}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"targets: >= {TARGET_SPEEDUP}x {'met' if speed_met else 'MISSED'}; gain per KL >= TRL's "
          f"{'met' if efficiency_met else 'MISSED'}")
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.json}")
    return 0 if speed_met and efficiency_met else 1


if __name__ == "__main__":
    sys.exit(main())
