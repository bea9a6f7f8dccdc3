import json

import pytest

from components.common.errors import UserInputError
from components.common.gcs_paths import fuse_path, uri_of_fuse_path
from components.common.models import model_source
from components.common.models import materialize_base_model
from components.common.model_references import (
    VERTEX_OPEN_EQUIVALENTS,
    resolve_model_reference,
)
from embedded_default import BUILTIN_MODEL_REFERENCE


def test_vertex_names_map_to_open_hugging_face_ids():
    resolved = resolve_model_reference("llama-2-7b")
    assert (resolved.kind, resolved.name_or_path) == ("hub", "meta-llama/Llama-2-7b-hf")
    assert resolve_model_reference("LLAMA-2-13B-CHAT").name_or_path == VERTEX_OPEN_EQUIVALENTS["llama-2-13b-chat"]


def test_hub_ids_local_directories_gcs_and_builtin(tiny_causal_lm):
    assert resolve_model_reference("Qwen/Qwen2.5-0.5B").kind == "hub"
    local = resolve_model_reference(str(tiny_causal_lm))
    assert (local.kind, local.name_or_path) == ("local", str(tiny_causal_lm.resolve()))
    assert resolve_model_reference("gs://bucket/models/m/").name_or_path == "gs://bucket/models/m"
    assert resolve_model_reference(BUILTIN_MODEL_REFERENCE).kind == "builtin"
    arithmetic = resolve_model_reference("builtin:tiny-arithmetic")
    assert (arithmetic.kind, arithmetic.name_or_path) == ("builtin", "builtin:tiny-arithmetic")
    assert str(fuse_path("gs://bucket/models/m")) == "/gcs/bucket/models/m"
    assert uri_of_fuse_path("/gcs/bucket/models/m") == "gs://bucket/models/m"
    assert uri_of_fuse_path("/tmp/x") is None


@pytest.mark.parametrize(
    "reference, fragment",
    [
        ("", "is empty"),
        ("text-bison@001", "PaLM 2 weights are not public"),
        ("t5-small", "encoder-decoder"),
        ("builtin:huge", "the built-in models are"),
        ("./no/such/dir", "does not exist"),
        ("not a model", "unknown model reference"),
    ],
)
def test_bad_references_are_one_line_errors_that_list_what_is_accepted(reference, fragment):
    with pytest.raises(UserInputError) as raised:
        resolve_model_reference(reference)
    message = str(raised.value)
    assert fragment in message and "\n" not in message


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(UserInputError, match="no config.json"):
        resolve_model_reference(str(tmp_path))


def test_referenced_models_are_loaded_from_where_they_live(tmp_path, tiny_causal_lm):
    materialize_base_model("llama-2-7b", tmp_path / "hub", seed=0)
    assert model_source(tmp_path / "hub") == "meta-llama/Llama-2-7b-hf"
    materialize_base_model(str(tiny_causal_lm), tmp_path / "local", seed=0)
    assert model_source(tmp_path / "local") == str(tiny_causal_lm.resolve())
    assert json.loads((tmp_path / "local" / "model_reference.json").read_text())["description"]
    # A trained model directory is loaded from the artifact itself.
    assert model_source(tiny_causal_lm) == str(tiny_causal_lm)
