"""Sampling draws from softmax(logits / T) exactly, whatever the checkpoint's generation config says,
and responses end at the first of every EOS id the tokenizer or the model declares."""

import copy
import shutil
from types import SimpleNamespace

import pytest
import torch

from components.common.generation import eos_token_ids, generate_responses, mask_after_first_eos
from components.common.log_probs import position_ids_for, token_log_probs

PROMPTS = ["the cat sat on the mat", "my dog ran in the park today", "a good day"]


def _load(directory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(directory).eval(), AutoTokenizer.from_pretrained(directory)


@pytest.fixture(scope="module")
def opinionated_lm(tiny_causal_lm, tmp_path_factory):
    """The tiny LM saved with a generation_config.json full of logits processors, as checkpoints ship them."""
    directory = tmp_path_factory.mktemp("opinionated-lm")
    shutil.copytree(tiny_causal_lm, directory, dirs_exist_ok=True)
    model, tokenizer = _load(directory)
    model.generation_config.update(
        do_sample=True,  # Llama 3's generation_config.json samples with these two
        temperature=0.6,
        top_p=0.9,
        repetition_penalty=3.0,
        no_repeat_ngram_size=2,
        suppress_tokens=[tokenizer.convert_tokens_to_ids("the")],  # off only when None
        min_p=0.2,  # off only when None
    )
    model.save_pretrained(directory)
    return directory


def _record_generate(model, monkeypatch) -> list:
    """Make `model.generate` also return its processed scores and raw logits, recorded in the list."""
    original = model.generate
    outputs = []

    def generate(*, generation_config, **kwargs):
        recording = copy.deepcopy(generation_config)
        recording.update(return_dict_in_generate=True, output_scores=True, output_logits=True)
        outputs.append(original(generation_config=recording, **kwargs))
        return outputs[-1].sequences

    monkeypatch.setattr(model, "generate", generate)
    return outputs


def _with_lora(model):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    return model


def _forward_logits(model, input_ids, attention_mask):
    """One forward pass over whole sequences, with the position ids the log-prob code uses."""
    position_ids = position_ids_for(attention_mask)
    return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits


@pytest.mark.parametrize("lora", [False, True])
def test_sampling_ignores_the_models_generation_config(opinionated_lm, monkeypatch, lora):
    """Each step's scores are the raw logits / T, so the log-probs PPO recomputes are the sampler's."""
    model, tokenizer = _load(opinionated_lm)
    model = _with_lora(model) if lora else model
    recorded = _record_generate(model, monkeypatch)
    temperature = 0.7
    torch.manual_seed(0)
    batch = generate_responses(
        model, tokenizer, PROMPTS, max_new_tokens=12, max_prompt_tokens=32, temperature=temperature
    )

    (output,) = recorded
    scores, logits = torch.stack(output.scores, dim=1), torch.stack(output.logits, dim=1)
    real = batch.response_mask.bool()
    assert torch.allclose(scores[real], logits[real] / temperature)

    sampler = token_log_probs(scores, batch.response_ids)
    with torch.no_grad():
        forward = _forward_logits(model, batch.input_ids, batch.attention_mask)
    prompt_length = batch.prompt_ids.shape[1]
    recomputed = token_log_probs(forward[:, prompt_length - 1 : -1] / temperature, batch.response_ids)
    assert torch.allclose(sampler[real], recomputed[real], atol=1e-4)
    base = model.get_base_model() if lora else model
    assert base.generation_config.repetition_penalty == 3.0  # the model's own config is put back


def test_greedy_decoding_is_the_argmax_of_the_raw_logits(opinionated_lm):
    """No repetition penalty or n-gram ban from the checkpoint: each token is the plain argmax."""
    model, tokenizer = _load(opinionated_lm)
    batch = generate_responses(
        model, tokenizer, PROMPTS, max_new_tokens=10, max_prompt_tokens=32, greedy=True
    )

    input_ids, attention_mask = batch.prompt_ids, batch.prompt_mask
    with torch.no_grad():
        for _ in range(batch.response_ids.shape[1]):
            next_token = _forward_logits(model, input_ids, attention_mask)[:, -1].argmax(dim=-1, keepdim=True)
            input_ids = torch.cat([input_ids, next_token], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(next_token)], dim=1)
    argmax = input_ids[:, batch.prompt_ids.shape[1] :]
    real = batch.response_mask.bool()
    assert torch.equal(batch.response_ids[real], argmax[real])


def test_eos_token_ids_keep_every_declared_id_tokenizer_first():
    tokenizer = SimpleNamespace(eos_token_id=3)
    model = SimpleNamespace(
        generation_config=SimpleNamespace(eos_token_id=[7, 3]), config=SimpleNamespace(eos_token_id=9)
    )
    assert eos_token_ids(model, tokenizer) == (3, 7, 9)
    model.generation_config.eos_token_id, model.config.eos_token_id = 7, [9, 7]
    assert eos_token_ids(model, tokenizer) == (3, 7, 9)


def test_mask_ends_at_the_first_of_any_eos_id():
    responses = torch.tensor([[5, 9, 3, 6], [5, 3, 9, 9], [5, 6, 5, 6]])
    assert mask_after_first_eos(responses, (3, 9)).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]


# A model that maps the last token to its successor: "cat" -> "dog" -> "yes" (an EOS of the model
# only) -> "cat", and "sat" -> "ran" -> "sat" forever.
SUCCESSORS = {"cat": "dog", "dog": "yes", "yes": "cat", "sat": "ran", "ran": "sat"}


@pytest.fixture(scope="module")
def two_eos_lm(tmp_path_factory):
    """A Llama that continues with SUCCESSORS[last token] and stops on "</s>" or "yes"."""
    from tiny_models import build_causal_lm

    directory = build_causal_lm(tmp_path_factory.mktemp("two-eos-lm"), hidden_size=64)
    model, tokenizer = _load(directory)
    ids = tokenizer.convert_tokens_to_ids
    with torch.no_grad():  # the layer adds nothing, so the final norm sees the last token's one-hot embedding
        layer = model.model.layers[0]
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.copy_(torch.eye(len(tokenizer), 64))
        model.lm_head.weight.zero_()
        for token, successor in SUCCESSORS.items():
            model.lm_head.weight[ids(successor), ids(token)] = 10.0
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, ids("yes")]
    model.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("greedy", [True, False])
def test_responses_end_at_any_eos_the_model_declares(two_eos_lm, greedy):
    model, tokenizer = _load(two_eos_lm)
    batch = generate_responses(
        model, tokenizer, ["the cat", "on the mat sat"], max_new_tokens=4, max_prompt_tokens=8, greedy=greedy
    )

    ids, pad = tokenizer.convert_tokens_to_ids, tokenizer.pad_token_id
    cut = ids(["ran", "sat", "ran", "sat"])
    assert batch.response_ids.tolist() == [[ids("dog"), ids("yes"), pad, pad], cut]
    assert batch.response_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch.texts == ["dog yes", "ran sat ran sat"]
    assert batch.ended.tolist() == [True, False]
    assert batch.eos_token_ids == (tokenizer.eos_token_id, ids("yes"))


@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize("lora", [False, True])
def test_a_groups_prompt_prefilled_once_gives_the_responses_of_a_prefill_per_row(tiny_causal_lm, greedy, lora):
    """GRPO/RLOO's groups: prompts of different lengths (left padding), 3 responses each; with the prompt
    prefilled once per group, the same seed samples exactly the same responses."""
    model, tokenizer = _load(tiny_causal_lm)
    model = _with_lora(model) if lora else model
    grouped = [prompt for prompt in PROMPTS for _ in range(3)]
    batches = []
    for group_size in (1, 3):
        torch.manual_seed(0)
        batches.append(generate_responses(model, tokenizer, grouped, max_new_tokens=8, max_prompt_tokens=32,
                                          greedy=greedy, group_size=group_size))
    alone, shared = batches
    assert torch.equal(alone.response_ids, shared.response_ids) and alone.texts == shared.texts
    assert len(set(shared.texts)) > 1


def test_group_size_refuses_prompts_that_are_not_in_groups(tiny_causal_lm):
    model, tokenizer = _load(tiny_causal_lm)
    with pytest.raises(ValueError, match="groups of 2 identical rows"):
        generate_responses(model, tokenizer, PROMPTS[:2], max_new_tokens=4, max_prompt_tokens=32, group_size=2)

