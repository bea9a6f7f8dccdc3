"""Checks before `rlhf-pipeline run` starts any stage: broken input fails in seconds, not after training.

- The datasets are read and checked by the same code as `rlhf-pipeline validate-data` and the data
  stages (components/common/data/preparation.py, with the stages' own settings), without a
  tokenizer: token lengths are measured by the data stages, which have the model's tokenizer.
- The model references resolve, and nothing is downloaded to find out: a local directory has a
  config.json, a built-in name is known, a Hugging Face id is in the local cache or the hub knows it
  (one metadata request), a gs:// prefix holds a config.json.
- Each dataset holds out something for the evaluation (the reward model's accuracy, the policies'
  answers), or comes with an eval_dataset that does.
- A dataset with fewer training rows than one batch is a warning with the numbers.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.common.errors import UserInputError
from pipeline.resources import DEFAULT_REPLICA_COUNT

HUB_TIMEOUT_S = 10.0
# Files that hold a model's weights, in any layout from_pretrained reads (sharded ones have an index).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
MODEL_PARAMETERS = ("large_model_reference", "reward_model_reference")


@dataclass
class PreflightResult:
    checked: list[str] = field(default_factory=list)  # one line per dataset and model
    warnings: list[str] = field(default_factory=list)


def _stage_configs(values: dict[str, Any]):
    """Both data stages' configs, filled from the parameter values as the stages fill them."""
    from components.common.stage_settings import settings_from_arguments
    from components.prepare_preference_data.stage import PreferenceDataConfig
    from components.prepare_prompt_data.stage import PromptDataConfig
    from pipeline.parameters import defaults

    v = {**defaults(), **{k: val for k, val in values.items() if val is not None}}
    optional = dict(eval_dataset=v.get("eval_dataset") or None, instruction=v.get("instruction") or None)
    return (settings_from_arguments(PreferenceDataConfig, v, **optional),
            settings_from_arguments(PromptDataConfig, v, **optional))


def _rows(prepared) -> str:
    books = [data.ledger for data in prepared.datasets]
    read = sum(b.input_rows for b in books)
    rejected = sum(b.rejected for b in books)
    duplicates = sum(b.duplicates for b in books)
    dropped = f", {rejected} rejected" if rejected else ""
    dropped += f", {duplicates} duplicates" if duplicates else ""
    return f"{read} rows read{dropped}"


def _check_preferences(preference, result: PreflightResult) -> None:
    from components.common.data.preparation import prepare_preferences

    try:
        pairs = prepare_preferences(preference.preference_dataset, preference.eval_dataset, preference.settings(),
                                    None, preference.eval_split_fraction, preference.seed)
    except UserInputError as error:
        raise UserInputError(f"preference_dataset: {error}") from None
    if pairs.missing_eval:
        raise UserInputError(f"preference_dataset: {pairs.missing_eval}")
    result.checked.append(f"checked preference_dataset: {len(pairs.train)} train + {len(pairs.eval)} eval pairs "
                          f"({_rows(pairs)})")
    batch = preference.batch_size
    if len(pairs.train) < batch:
        result.warnings.append(
            f"warning: preference_dataset: {len(pairs.train)} training pairs, fewer than one batch "
            f"(batch_size={batch}): every training step sees the same {len(pairs.train)} pairs")


def _check_reward_function(spec: str, prepared_prompts, result: PreflightResult) -> None:
    """The reward function loads and every column it cannot do without is in the prompt rows."""
    from components.common.reward_functions import check_columns, load_reward_function

    reward = load_reward_function(spec)
    if reward is not None:
        check_columns(reward, [p.columns for p in prepared_prompts.train], "prompt_dataset")
        result.checked.append(f"checked reward_function: {spec}")


def _check_sft_dataset(values: dict[str, Any], result: PreflightResult) -> None:
    from components.common.data.loading import DEFAULT_MAX_BAD_ROW_FRACTION
    from components.supervised_fine_tuning.data import check_sft_dataset

    checked = check_sft_dataset(str(values.get("sft_dataset") or ""), str(values.get("preference_dataset") or ""),
                                values.get("max_bad_row_fraction", DEFAULT_MAX_BAD_ROW_FRACTION))
    if checked:
        result.checked.append(checked)


def check_datasets(values: dict[str, Any], result: PreflightResult) -> None:
    """Both data stages' preparation, as validate-data runs it; UserInputError names the parameter."""
    from components.common.data.preparation import prepare_prompts

    preference, prompts = _stage_configs(values)
    if preference.preference_dataset.strip():  # empty: online RL with a reward function alone
        _check_preferences(preference, result)
    try:
        prepared_prompts = prepare_prompts(prompts.prompt_dataset, prompts.eval_dataset, prompts.settings(), None,
                                           prompts.eval_split_fraction, prompts.max_eval_prompts, prompts.seed)
    except UserInputError as error:
        raise UserInputError(f"prompt_dataset: {error}") from None
    if prepared_prompts.missing_eval:
        raise UserInputError(f"prompt_dataset: {prepared_prompts.missing_eval}")
    result.checked.append(f"checked prompt_dataset: {len(prepared_prompts.train)} train + "
                          f"{len(prepared_prompts.eval)} eval prompts ({_rows(prepared_prompts)})")
    _check_reward_function(str(values.get("reward_function") or ""), prepared_prompts, result)
    _check_sft_dataset(values, result)
    batch = preference.batch_size
    if len(prepared_prompts.train) < batch:
        result.warnings.append(
            f"warning: prompt_dataset: {len(prepared_prompts.train)} training prompts, fewer than one batch "
            f"(batch_size={batch}): every PPO batch repeats prompts")


def _hub_check(name: str, reference: str, hub_id: str) -> str:
    """Where a Hugging Face model will come from: the local cache or the hub (asked, not downloaded)."""
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub import errors as hub_errors

    if isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
        return f"{hub_id}, in the local Hugging Face cache"
    if constants.HF_HUB_OFFLINE:
        raise UserInputError(
            f"{name}: '{reference}' is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            "HF_HUB_OFFLINE is set; download it first (`hf download " + hub_id + "`) or give a local directory")
    try:
        info = HfApi().model_info(hub_id, timeout=HUB_TIMEOUT_S)
    except hub_errors.RepositoryNotFoundError:
        raise UserInputError(f"{name}: the Hugging Face hub has no model '{hub_id}' (or it is private: set "
                             "HF_TOKEN)") from None
    except hub_errors.HfHubHTTPError as error:
        raise UserInputError(f"{name}: the Hugging Face hub refused '{hub_id}' "
                             f"({str(error).splitlines()[0]})") from None
    except Exception as error:  # no network, DNS, proxy, timeout: all mean "cannot be reached"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(
            f"{name}: '{reference}' is not in the local Hugging Face cache and the hub cannot be reached "
            f"({reason}); connect to the internet, download the model where the hub is reachable, or give a "
            "local directory") from None
    gated = getattr(info, "gated", False)
    if gated:
        from huggingface_hub import get_token

        if not get_token():
            raise UserInputError(f"{name}: '{hub_id}' is gated on the Hugging Face hub: accept its terms there "
                                 "and set HF_TOKEN")
    return f"{hub_id}, on the Hugging Face hub (downloaded by the first stage that needs it)"


def _gcs_check(name: str, uri: str) -> str:
    from components.common import gcs_paths

    mounted = gcs_paths.fuse_path(uri)
    if mounted.is_dir():
        if not (mounted / "config.json").is_file():
            raise UserInputError(f"{name}: {uri} has no config.json (not a Hugging Face model)")
        return f"{uri} (mounted at {mounted})"
    bucket, prefix = gcs_paths.split_uri(uri)
    try:
        from google.cloud import storage

        exists = storage.Client().bucket(bucket).blob(f"{prefix.rstrip('/')}/config.json".lstrip("/")).exists()
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserInputError(f"{name}: cannot read {uri} ({reason}); run `gcloud auth application-default login` "
                             "or set GOOGLE_APPLICATION_CREDENTIALS, or copy the model to a local directory") from None
    if not exists:
        raise UserInputError(f"{name}: {uri} has no config.json (not a Hugging Face model)")
    return f"{uri}, on Cloud Storage"


def _resolve(name: str, reference: str):
    from components.common.model_references import resolve_model_reference

    try:
        return resolve_model_reference(reference)
    except UserInputError as error:
        message = str(error)
        raise UserInputError(message if message.startswith(name) else f"{name}: {message}") from None


def check_model_reference(name: str, reference: str) -> str:
    """What `reference` resolves to, in words; UserInputError when it cannot be used."""
    resolved = _resolve(name, reference)
    if resolved.kind == "builtin":
        return f"{resolved.name_or_path}, built by the first stage"
    if resolved.kind == "local":
        directory = Path(resolved.name_or_path)
        if not any(p.suffix in WEIGHT_SUFFIXES for p in directory.iterdir() if p.is_file()):
            raise UserInputError(f"{name}: model directory '{reference}' has a config.json but no weights "
                                 f"(no {', '.join('*' + s for s in WEIGHT_SUFFIXES[:2])} file)")
        return f"local directory {resolved.name_or_path}"
    if resolved.kind == "gcs":
        return _gcs_check(name, resolved.name_or_path)
    return _hub_check(name, reference, resolved.name_or_path)


def check_models(values: dict[str, Any], result: PreflightResult) -> None:
    for name in MODEL_PARAMETERS:
        if name == "large_model_reference" or values.get(name):
            where = check_model_reference(name, str(values.get(name) or ""))
            result.checked.append(f"checked {name}: {where}")


def check_before_run(values: dict[str, Any]) -> PreflightResult:
    """Every check that can be made before a stage starts; the first problem raises UserInputError."""
    result = PreflightResult()
    machines = values.get("replica_count", DEFAULT_REPLICA_COUNT)
    if machines != DEFAULT_REPLICA_COUNT:
        raise UserInputError(f"replica_count {machines}: a local run trains on this machine alone; leave it at "
                             f"{DEFAULT_REPLICA_COUNT} (several machines: `rlhf-pipeline submit --target vertex`)")
    for name in MODEL_PARAMETERS:  # a malformed reference fails before the data is read
        if name == "large_model_reference" or values.get(name):
            _resolve(name, str(values.get(name) or ""))
    check_datasets(values, result)
    check_models(values, result)
    return result
