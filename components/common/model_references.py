"""What `large_model_reference` may name, and where each kind of reference is loaded from."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

from components.common.errors import UserInputError
from components.common.registry import BUILTIN_PREFIX, builtin_models


# Vertex model names that have an open Hugging Face causal LM with the same weights.
VERTEX_OPEN_EQUIVALENTS: dict[str, str] = {
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
    "llama-2-13b-chat": "meta-llama/Llama-2-13b-chat-hf",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
    "llama-3-8b-instruct": "meta-llama/Meta-Llama-3-8B-Instruct",
    "gemma-2b": "google/gemma-2b",
    "gemma-7b": "google/gemma-7b",
}

# Vertex model names with no open causal-LM equivalent, and why.
VERTEX_UNSUPPORTED: dict[str, str] = {
    "text-bison@001": "PaLM 2 weights are not public",
    "chat-bison@001": "PaLM 2 weights are not public",
    "t5-small": "T5 is an encoder-decoder model, and this pipeline tunes causal LMs",
    "t5-large": "T5 is an encoder-decoder model, and this pipeline tunes causal LMs",
    "t5-xl": "T5 is an encoder-decoder model, and this pipeline tunes causal LMs",
    "t5-xxl": "T5 is an encoder-decoder model, and this pipeline tunes causal LMs",
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_PATH_LIKE = re.compile(r"^(/|\./|\.\./|~)")


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference made concrete.

    kind: "builtin" (built by this project), "local" (a directory), "hub" (a Hugging Face id),
    "gcs" (a gs:// prefix, read through Vertex's /gcs/ mount or downloaded).
    """

    kind: str
    name_or_path: str
    description: str


def build_builtin_model(reference: str, output_dir: str | Path, seed: int) -> Path:
    """Build the built-in model `reference` (registered by a package: components/common/registry.py)."""
    return builtin_models()[reference].build(Path(output_dir), seed)


def accepted_forms() -> str:
    vertex_names = ", ".join(sorted(VERTEX_OPEN_EQUIVALENTS))
    builtins = ", ".join(f"'{name}'" for name in builtin_models())
    return (
        "a local model directory (with config.json), a Hugging Face id 'org/name', a gs:// path, "
        f"{builtins}, or a Vertex name with an open equivalent ({vertex_names})"
    )


def resolve_model_reference(reference: str) -> ResolvedModel:
    """Classify a model reference without loading anything; a bad one raises UserInputError."""
    ref = (reference or "").strip()
    if not ref:
        raise UserInputError(f"large_model_reference is empty; accepted: {accepted_forms()}")
    if ref.startswith(BUILTIN_PREFIX):
        known = builtin_models()
        if ref not in known:
            names = ", ".join(f"'{name}'" for name in known)
            raise UserInputError(f"unknown built-in model '{ref}'; the built-in models are {names}")
        return ResolvedModel("builtin", ref, known[ref].description)
    if ref.startswith("gs://"):
        if len(ref) <= len("gs://") or ref.endswith("gs://"):
            raise UserInputError(f"model reference '{ref}' names no bucket")
        return ResolvedModel("gcs", ref.rstrip("/"), f"model files under {ref}")
    if ref.lower() in VERTEX_OPEN_EQUIVALENTS:
        hub_id = VERTEX_OPEN_EQUIVALENTS[ref.lower()]
        return ResolvedModel("hub", hub_id, f"Vertex name '{ref}' -> Hugging Face '{hub_id}'")
    if ref.lower() in VERTEX_UNSUPPORTED:
        raise UserInputError(
            f"model '{ref}' is not supported: {VERTEX_UNSUPPORTED[ref.lower()]}; accepted: {accepted_forms()}"
        )
    local = Path(os.path.expanduser(ref))
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserInputError(f"model directory '{ref}' has no config.json (not a Hugging Face model)")
        return ResolvedModel("local", str(local.resolve()), f"local model directory {local.resolve()}")
    if _PATH_LIKE.match(ref) or local.exists():
        raise UserInputError(f"model directory '{ref}' does not exist")
    if _HUB_ID.match(ref):
        return ResolvedModel("hub", ref, f"Hugging Face model '{ref}'")
    raise UserInputError(f"unknown model reference '{ref}'; accepted: {accepted_forms()}")
