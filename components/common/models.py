"""Where a model lives and how every stage loads it.

A stage receives models as KFP `Model` artifacts. The built-in tiny model and every trained model
are real Hugging Face directories inside the artifact. A base model that lives elsewhere (a Hub id,
a local directory, a `gs://` object mounted under `/gcs/`) is passed by reference: the artifact holds
`model_reference.json` naming it, and `from_pretrained` loads it from there unchanged.
"""

import gc
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from components.common.gcs_paths import fuse_path, storage_client
from components.common.model_references import ResolvedModel, build_builtin_model, resolve_model_reference

MODEL_REFERENCE_FILE = "model_reference.json"
# Written into a Model artifact that stands for "no model": the DAG's branch that skips the reward model
# (pipeline/dag.py) passes such an artifact on, since KFP cannot pass an input only sometimes.
NO_MODEL_FILE = "no_model.json"


def write_model_reference(artifact_dir: str | Path, name_or_path: str, description: str) -> None:
    """Record in `artifact_dir` that the model is loaded from `name_or_path`."""
    directory = Path(artifact_dir)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"name_or_path": name_or_path, "description": description}
    (directory / MODEL_REFERENCE_FILE).write_text(json.dumps(payload, indent=2) + "\n")


def write_no_model(artifact_dir: str | Path, reason: str) -> None:
    """Mark `artifact_dir` as standing for no model, and say why."""
    directory = Path(artifact_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / NO_MODEL_FILE).write_text(json.dumps({"reason": reason}, indent=2) + "\n")


def holds_model(artifact_dir: str | Path | None) -> bool:
    """False for a missing artifact and for one written by `write_no_model`."""
    return artifact_dir is not None and not (Path(artifact_dir) / NO_MODEL_FILE).is_file()


def model_source(artifact_dir: str | Path) -> str:
    """What to pass to `from_pretrained` for the model held by (or referenced from) an artifact."""
    directory = Path(artifact_dir)
    reference = directory / MODEL_REFERENCE_FILE
    if reference.is_file():
        return json.loads(reference.read_text())["name_or_path"]
    if (directory / "config.json").is_file():
        return str(directory)
    raise FileNotFoundError(
        f"{directory} holds neither a Hugging Face model (config.json) nor a {MODEL_REFERENCE_FILE}"
    )


@dataclass(frozen=True)
class Placement:
    """The device a stage computes on and the dtype its weights use there (on the CPU, with as many
    torch threads as the stage has cores: components/common/threads.py)."""

    device: torch.device
    dtype: torch.dtype

    @classmethod
    def detect(cls) -> "Placement":
        """CUDA in bf16 where the GPU supports it, else CUDA in fp32, else the CPU in fp32.

        The GPU is the process's current one: its own, when one process runs per GPU. Sets torch's
        thread count to the cores the stage is given and prints the line that says so (stage log).
        """
        from components.common.threads import use_the_cores_given

        print(use_the_cores_given(), flush=True)
        if torch.cuda.is_available():
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
            return cls(torch.device("cuda", torch.cuda.current_device()), dtype)
        return cls(torch.device("cpu"), torch.float32)


def weights_dtype(placement: Placement, lora_rank: int) -> torch.dtype:
    """The dtype a trained model is loaded in (the reward model, the DPO/KTO policy).

    Under LoRA the base weights stay frozen, so they may stay in the placement's dtype to save
    memory; a model trained in full is loaded in float32, its master weights.
    """
    return placement.dtype if lora_rank > 0 else torch.float32


def pretrained_model(model):
    """The Hugging Face model inside a peft wrapper (or `model` itself): the module every forward pass
    enters, generation's included, and the one holding the config and generation config."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def load_tokenizer(source: str, padding_side: str):
    """A tokenizer that can pad: one without a pad token pads with its EOS token.

    Generation code never relies on pad != eos: a response ends at its first EOS.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"the tokenizer of {source} has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def save_causal_lm(language_model, tokenizer, output_dir: str | Path) -> None:
    """Save a tuned causal LM as a plain Hugging Face model directory: LoRA merged in (a peft model),
    float32 weights, and the ids generation needs. Every stage that tunes a policy saves it so.

    Merging happens in float32 (on the CPU, to spare GPU memory) so that small tuned deltas are not
    rounded away by a bf16 base.
    """
    from peft import PeftModel

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    language_model = language_model.to(device="cpu", dtype=torch.float32)
    if isinstance(language_model, PeftModel):
        language_model = language_model.merge_and_unload()
    for settings in (language_model.config, language_model.generation_config):
        # Fill in what generation needs; keep the source's own ids (e.g. several stop tokens).
        if settings.pad_token_id is None:
            settings.pad_token_id = tokenizer.pad_token_id
        if settings.eos_token_id is None:
            settings.eos_token_id = tokenizer.eos_token_id
    language_model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def download_gcs_prefix(uri: str, destination: Path) -> Path:
    """Copy every object under gs://BUCKET/PREFIX into `destination` (Application Default Credentials)."""
    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    client = storage_client(f"cannot download the model files under {uri}")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    count = 0
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        if blob.name.endswith("/"):
            continue
        target = destination / blob.name[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        count += 1
    if count == 0:
        raise FileNotFoundError(f"no objects under {uri}")
    return destination


def materialize_base_model(reference: str, artifact_dir: str | Path, seed: int) -> ResolvedModel:
    """Fill `artifact_dir` with the model (built-in, downloaded) or a reference to where it lives."""
    resolved = resolve_model_reference(reference)
    directory = Path(artifact_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if resolved.kind == "builtin":
        build_builtin_model(resolved.name_or_path, directory, seed)
    elif resolved.kind == "gcs":
        mounted = fuse_path(resolved.name_or_path)
        if mounted.is_dir():
            write_model_reference(directory, str(mounted), resolved.description)
        else:
            download_gcs_prefix(resolved.name_or_path, directory)
    else:
        write_model_reference(directory, resolved.name_or_path, resolved.description)
    return resolved


def load_causal_lm(source: str, placement: Placement, use_chat_template: str):
    """A causal LM in eval mode on the placement's device, and the formatter of its prompts (the
    evaluation's policies, DPO's implicit reward)."""
    from transformers import AutoModelForCausalLM

    from components.common.chat_templates import PromptFormatter

    tokenizer = load_tokenizer(source, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=placement.dtype)
    model.to(placement.device).eval()
    return model, PromptFormatter(tokenizer, use_chat_template, source)


def free_accelerator_memory() -> None:
    """Return the memory of models that went out of scope before the next one is loaded."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
