"""A model's architecture figures (layers, widths, heads, vocabulary), read from its config.json
without loading any weights, and the parameter counts that follow from them.

The memory plan (cli/memory_plan/) needs nothing else to size a training step. A folder holding only
a config.json is enough; the models that Vertex names (components/common/model_references.py) and a
few other public ones are in `PUBLIC_CONFIGS`, so planning them needs no download.

Supported families: the Llama layout (gated MLP, RMSNorm, rotary positions: llama, mistral, qwen2,
qwen3, gemma, gemma2) and GPT-2. Another `model_type` is a UserInputError that names these.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from components.common.gcs_paths import fuse_path

GATED_FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2")
GPT2 = "gpt2"
SUPPORTED_FAMILIES = GATED_FAMILIES + (GPT2,)

# config.json values of public models, as published in each model's repository on the Hugging Face hub
# (https://huggingface.co/<id>/blob/main/config.json); only the fields the plan reads. The chat and
# instruct variants share their base model's values.
_LLAMA_2_7B = dict(model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)
_LLAMA_2_13B = dict(model_type="llama", vocab_size=32000, hidden_size=5120, intermediate_size=13824,
                    num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40, tie_word_embeddings=False)
_LLAMA_3_8B = dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)
PUBLIC_CONFIGS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-2-7b-hf": _LLAMA_2_7B,
    "meta-llama/Llama-2-7b-chat-hf": _LLAMA_2_7B,
    "meta-llama/Llama-2-13b-hf": _LLAMA_2_13B,
    "meta-llama/Llama-2-13b-chat-hf": _LLAMA_2_13B,
    "meta-llama/Llama-2-70b-hf": dict(model_type="llama", vocab_size=32000, hidden_size=8192,
                                      intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                                      num_key_value_heads=8, tie_word_embeddings=False),
    "meta-llama/Meta-Llama-3-8B": _LLAMA_3_8B,
    "meta-llama/Meta-Llama-3-8B-Instruct": _LLAMA_3_8B,
    "meta-llama/Llama-3.2-1B": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                                    num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                                    head_dim=64, tie_word_embeddings=True),
    "google/gemma-2b": dict(model_type="gemma", vocab_size=256000, hidden_size=2048, intermediate_size=16384,
                            num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1, head_dim=256,
                            tie_word_embeddings=True),
    "google/gemma-7b": dict(model_type="gemma", vocab_size=256000, hidden_size=3072, intermediate_size=24576,
                            num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=16, head_dim=256,
                            tie_word_embeddings=True),
}


@dataclass(frozen=True)
class Architecture:
    """The figures of a decoder that size its weights, activations and KV cache."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool
    attention_bias: bool = False  # biases on the q, k, v and output projections
    qkv_bias: bool = False  # biases on q, k, v only (qwen2)
    mlp_bias: bool = False
    max_positions: int = 0  # GPT-2's learned position embeddings

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "Architecture":
        """The figures of a config.json mapping; `where` names it in the error for an unsupported one."""
        model_type = config.get("model_type", "")
        if model_type not in SUPPORTED_FAMILIES:
            raise UserInputError(f"{where}: cannot plan memory for model_type {model_type!r}; the plan knows "
                                 f"{', '.join(SUPPORTED_FAMILIES)}")
        try:
            if model_type == GPT2:
                hidden = config["n_embd"]
                return cls(GPT2, config["vocab_size"], hidden, config.get("n_inner") or 4 * hidden,
                           config["n_layer"], config["n_head"], config["n_head"], hidden // config["n_head"],
                           config.get("tie_word_embeddings", True), attention_bias=True, mlp_bias=True,
                           max_positions=config["n_positions"])
            hidden, heads = config["hidden_size"], config["num_attention_heads"]
            return cls(
                model_type, config["vocab_size"], hidden, config["intermediate_size"], config["num_hidden_layers"],
                heads, config.get("num_key_value_heads") or heads, config.get("head_dim") or hidden // heads,
                config.get("tie_word_embeddings", model_type.startswith("gemma")),
                attention_bias=bool(config.get("attention_bias", False)), qkv_bias=model_type == "qwen2",
                mlp_bias=bool(config.get("mlp_bias", False)),
            )
        except KeyError as missing:
            raise UserInputError(f"{where}: config.json lacks {missing}, which the memory plan needs") from None

    @property
    def gated(self) -> bool:
        """A gated MLP (gate, up and down projections) rather than GPT-2's two."""
        return self.model_type != GPT2

    @property
    def kv_width(self) -> int:
        """Width of a key (or value) vector of one token in one layer, all key-value heads together."""
        return self.num_kv_heads * self.head_dim

    def layer_linears(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer of one decoder block: what LoRA's "all-linear" adapts."""
        h, q = self.hidden_size, self.num_heads * self.head_dim
        if not self.gated:  # GPT-2's fused qkv, output, and two MLP matrices
            return [(h, 3 * h), (h, h), (h, self.intermediate_size), (self.intermediate_size, h)]
        mlp = [(h, self.intermediate_size)] * 2 + [(self.intermediate_size, h)]
        return [(h, q), (h, self.kv_width), (h, self.kv_width), (q, h)] + mlp

    def _layer_parameters(self) -> int:
        weights = sum(i * o for i, o in self.layer_linears())
        h, q = self.hidden_size, self.num_heads * self.head_dim
        if not self.gated:
            return weights + 3 * h + h + self.intermediate_size + h + 4 * h  # biases, two LayerNorms
        biases = 0
        if self.attention_bias:
            biases += q + 2 * self.kv_width + h
        elif self.qkv_bias:
            biases += q + 2 * self.kv_width
        if self.mlp_bias:
            biases += 2 * self.intermediate_size + h
        norms = {"gemma2": 4 * h, "qwen3": 2 * h + 2 * self.head_dim}.get(self.model_type, 2 * h)
        return weights + biases + norms

    def trunk_parameters(self) -> int:
        """Embeddings, every decoder block and the final norm: all but the output head."""
        h = self.hidden_size
        final_norm = 2 * h if self.model_type == GPT2 else h
        positions = self.max_positions * h
        return self.vocab_size * h + positions + self.num_layers * self._layer_parameters() + final_norm

    def causal_lm_parameters(self) -> int:
        """Every parameter of the causal LM (`num_parameters()`); a tied LM head adds none."""
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return self.trunk_parameters() + head

    def reward_model_parameters(self) -> int:
        """The sequence-classification model with one score (a linear layer without bias)."""
        return self.trunk_parameters() + self.hidden_size

    def lora_parameters(self, rank: int) -> int:
        """The adapters LoRA adds to every linear layer of every block (target_modules="all-linear")."""
        return self.num_layers * sum(rank * (i + o) for i, o in self.layer_linears())


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserInputError(f"cannot read {path}: {error}") from None


def _cached_hub_config(hub_id: str) -> Path | None:
    """config.json of a Hugging Face model in the local cache (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def architecture_of(reference: str, parameter: str = "large_model_reference") -> Architecture:
    """The architecture a model reference names, from a config.json here or `PUBLIC_CONFIGS`; nothing is
    downloaded. UserInputError (naming `parameter`) when neither has it."""
    from components.common.model_references import resolve_model_reference
    from components.common.registry import builtin_models

    resolved = resolve_model_reference(reference)
    name = resolved.name_or_path
    if resolved.kind == "builtin":
        return Architecture.from_config(builtin_models()[name].architecture(), f"{parameter} {name}")
    if resolved.kind == "local":
        return Architecture.from_config(_read_config(Path(name) / "config.json"), f"{parameter} {name}")
    if resolved.kind == "hub":
        if name in PUBLIC_CONFIGS:
            return Architecture.from_config(PUBLIC_CONFIGS[name], f"{parameter} {name}")
        cached = _cached_hub_config(name)
        if cached is not None:
            return Architecture.from_config(_read_config(cached), f"{parameter} {name}")
    if resolved.kind == "gcs" and (fuse_path(name) / "config.json").is_file():
        return Architecture.from_config(_read_config(fuse_path(name) / "config.json"), f"{parameter} {name}")
    raise UserInputError(
        f"{parameter}: no config.json of '{reference}' here to plan its memory from (nothing is downloaded); put "
        f"its config.json in a folder and plan with that folder, or fetch it into the Hugging Face cache "
        f"(`hf download {name} config.json`)")
