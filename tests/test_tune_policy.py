"""PPO policy tuning: the maths by hand, the model plumbing, and short real runs on tiny models.

The reward model of the runs is a real GPT-2 sequence classifier whose score is a known function:
its attention and MLP outputs are zeroed, so the score depends only on the position of the last
token, and its position embeddings make it fall with the length of prompt + response. PPO must
then learn to answer shorter, which a random tiny policy can do within a few steps.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from components.common.errors import UserInputError
from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.models import Placement, load_tokenizer, save_causal_lm
from components.tune_policy.config import PolicyTuningConfig
from components.tune_policy.optimization import learning_rate_factor
from components.tune_policy.policy_model import load_policy, make_reference
from components.tune_policy.ppo_math import (
    clipped_ratio_loss,
    clipped_value_loss,
    generalized_advantages,
    kl_shaped_rewards,
    masked_whiten,
)
from components.tune_policy.prompt_data import PromptBatches, read_training_prompts
from tiny_models import PROMPTS, length_score

CPU = Placement(torch.device("cpu"), torch.float32)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread: on a busy 2-core machine, more threads mostly spin."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------- models built offline


def test_length_reward_model_scores_the_known_function(length_reward_model):
    from components.common.reward_scoring import RewardScorer

    scorer = RewardScorer(str(length_reward_model), CPU)
    responses = ["cat", "the cat sat on the mat", "the dog ran in the park and the cat sat on the mat"]
    scores = scorer.score([Prompt(PROMPTS[0])] * 3, responses)
    lengths = torch.tensor([len(scorer.tokenizer(PROMPTS[0] + r + "</s>")["input_ids"]) for r in responses])
    assert torch.allclose(scores, length_score(lengths), atol=1e-3)
    assert scores[0] > scores[1] > scores[2]


# ---------------------------------------------------------------- PPO maths, checked by hand


def test_gae_matches_a_hand_computed_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 99.0]])
    values = torch.tensor([[0.5, 0.4, 0.3], [1.0, 0.5, 77.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = generalized_advantages(rewards, values, mask, gamma=1.0, gae_lambda=0.5)
    # Row 0: deltas (-0.1, -0.1, 0.7); A2 = 0.7, A1 = -0.1 + 0.5 * 0.7, A0 = -0.1 + 0.5 * 0.25.
    # Row 1 ends at index 1 (reward 99 and value 77 lie after its EOS and must not count).
    expected = torch.tensor([[0.025, 0.25, 0.7], [0.25, 1.5, 0.0]])
    assert torch.allclose(advantages, expected)
    assert torch.allclose(returns, torch.tensor([[0.525, 0.65, 1.0], [1.25, 2.0, 0.0]]))


def test_gae_discounts_with_gamma():
    advantages, returns = generalized_advantages(
        torch.tensor([[1.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.5, gae_lambda=1.0
    )
    assert torch.allclose(returns, torch.tensor([[1.5, 1.0]]))
    assert torch.allclose(advantages, returns)


def test_kl_shaping_puts_the_score_on_the_last_real_token_and_nothing_after_eos():
    scores = torch.tensor([2.0, -1.0])
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -5.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, -1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    rewards, kl = kl_shaped_rewards(scores, logprobs, ref_logprobs, mask, kl_coeff=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, -1.0], [1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.0, 0.1 + 2.0], [-0.1, -1.0, 0.0]]))

    rewards, kl = kl_shaped_rewards(scores, logprobs, None, mask, kl_coeff=0.1)
    assert torch.equal(kl, torch.zeros_like(kl))
    assert torch.allclose(rewards, torch.tensor([[0.0, 0.0, 2.0], [0.0, -1.0, 0.0]]))


def test_ppos_clipped_policy_loss_stops_the_gradient_outside_the_trust_region():
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    logprobs = torch.log(torch.tensor([1.5, 0.9, 0.5, 1.1])).requires_grad_()
    loss, low, high = clipped_ratio_loss(logprobs, torch.zeros(4), advantages, 0.2, 0.2)
    assert torch.allclose(loss, torch.tensor([-1.2, -0.9, 0.8, 1.1]))
    assert torch.equal(low | high, torch.tensor([True, False, True, False]))
    loss.sum().backward()
    # d(-A r)/d logp = -A r where unclipped; zero where the clipped constant won.
    assert torch.allclose(logprobs.grad, torch.tensor([0.0, -0.9, 0.0, 1.1]))


def test_clipped_value_loss_takes_the_worse_of_clipped_and_unclipped_errors():
    values = torch.tensor([0.5, 2.0, -0.5])
    loss, clipped = clipped_value_loss(values, torch.zeros(3), torch.ones(3), clip_range=0.2)
    # V=0.5: clipped to 0.2 -> 0.5 * 0.8^2; V=2: unclipped 0.5 * 1^2; V=-0.5: unclipped 0.5 * 1.5^2.
    assert torch.allclose(loss, torch.tensor([0.32, 0.5, 1.125]))
    assert torch.equal(clipped, torch.tensor([1.0, 0.0, 0.0]))


def test_whitening_uses_only_real_tokens():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    whitened = masked_whiten(values, mask)
    real = whitened[mask.bool()]
    assert whitened[0, 2] == 0
    assert real.mean().abs() < 1e-6
    assert real.pow(2).mean().sqrt() == pytest.approx(1.0, abs=1e-4)


def test_learning_rate_schedule_warms_up_then_decays_or_stays():
    factors = [learning_rate_factor(s, total_steps=10, warmup_steps=2, schedule="linear") for s in range(10)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert factors[-1] == pytest.approx(1 / 8)
    assert all(a >= b for a, b in zip(factors[2:], factors[3:]))
    assert learning_rate_factor(9, 10, 2, "constant") == 1.0
    assert learning_rate_factor(0, 10, 0, "constant") == 1.0


# ---------------------------------------------------------------- settings and data


def test_config_rejects_unusable_settings_naming_each_one():
    assert PolicyTuningConfig(steps=3, learning_rate_multiplier=2.0).learning_rate == pytest.approx(2e-5)
    with pytest.raises(UserInputError) as error:
        PolicyTuningConfig(steps=0, batch_size=8, minibatch_size=16, kl_coeff=-1, lr_schedule="cosine").validate()
    message = str(error.value)
    for expected in ("steps (reinforcement_learning_train_steps)", "exceeds batch_size 8", "kl_coeff", "cosine"):
        assert expected in message


def test_prompt_batches_cover_each_prompt_once_per_pass_in_a_seeded_order():
    prompts = [f"p{i}" for i in range(5)]
    stream = PromptBatches(prompts, batch_size=3, seed=7)
    batches = [next(stream) for _ in range(10)]  # 30 prompts = 6 full passes
    drawn = [p for batch in batches for p in batch]
    for one_pass in range(6):
        assert sorted(drawn[5 * one_pass : 5 * one_pass + 5]) == prompts
    again = PromptBatches(prompts, batch_size=3, seed=7)
    assert [next(again) for _ in range(10)] == batches
    other = PromptBatches(prompts, batch_size=3, seed=8)
    assert [next(other) for _ in range(10)] != batches


def test_prompt_batches_continue_from_a_saved_position():
    prompts = [f"p{i}" for i in range(5)]
    stream = PromptBatches(prompts, batch_size=3, seed=7)
    [next(stream) for _ in range(4)]  # mid-pass: part of an order is pending
    saved = json.loads(json.dumps(stream.state()))  # as a checkpoint stores it
    expected = [next(stream) for _ in range(6)]
    resumed = PromptBatches(prompts, batch_size=3, seed=123)
    resumed.restore(saved)
    assert [next(resumed) for _ in range(6)] == expected


def test_reading_prompts_names_the_bad_row(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"text": "b"}\n')
    with pytest.raises(UserInputError, match=r"train.jsonl row 3: field 'prompt'"):
        read_training_prompts(path)
    path.write_text('{"prompt": "a"}\n{"prompt": "  "}\n')
    with pytest.raises(UserInputError, match=r"row 2: field 'prompt' is empty"):
        read_training_prompts(path)
    path.write_text('{"prompt": "a"}\n\n{"prompt": "b", "extra": 1}\n')
    assert read_training_prompts(path) == [Prompt("a"), Prompt("b")]
    with pytest.raises(UserInputError, match="file not found"):
        read_training_prompts(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- policy, reference, rollout


def _count_causal_lm_loads(monkeypatch) -> list[str]:
    from transformers import AutoModelForCausalLM

    loads = []
    original = AutoModelForCausalLM.from_pretrained

    def counting(source, *args, **kwargs):
        loads.append(str(source))
        return original(source, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    return loads


@pytest.mark.parametrize(
    ("lora_rank", "kl_coeff", "expected_loads", "has_reference"),
    [(0, 0.0, 1, False), (0, 0.1, 2, True), (2, 0.0, 1, False), (2, 0.1, 1, True)],
)
def test_reference_is_loaded_only_when_needed(
    monkeypatch, tiny_causal_lm, lora_rank, kl_coeff, expected_loads, has_reference
):
    loads = _count_causal_lm_loads(monkeypatch)
    config = PolicyTuningConfig(steps=1, lora_rank=lora_rank, kl_coeff=kl_coeff)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    reference = make_reference(policy, str(tiny_causal_lm), config, CPU)
    assert len(loads) == expected_loads
    assert (reference is not None) == has_reference


def _perturb_lora(policy, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def test_full_weight_reference_equals_the_policy_before_training_under_bf16_autocast(tiny_causal_lm):
    """The reference is loaded as the policy is (float32 weights, the placement's autocast), so the KL
    is exactly 0 at step 0 under mixed precision too (it was not with a bf16 copy of the weights)."""
    from components.tune_policy.rollout import policy_logprobs_and_values

    mixed = Placement(torch.device("cpu"), torch.bfloat16)
    config = PolicyTuningConfig(steps=1, lora_rank=0, kl_coeff=0.1, temperature=0.7)
    policy = load_policy(str(tiny_causal_lm), config, mixed)
    reference = make_reference(policy, str(tiny_causal_lm), config, mixed)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    encoded = tokenizer(["the cat sat on the mat", "a dog"], return_tensors="pt", padding=True)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    response, response_mask = ids[:, -3:], mask[:, -3:]
    logprobs, _, _ = policy_logprobs_and_values(policy, ids, mask, response, response_mask, config)
    assert torch.equal(reference(ids, mask, response), logprobs)


def test_lora_reference_is_the_base_model_and_saved_policy_is_merged(tmp_path, tiny_causal_lm):
    from transformers import AutoModelForCausalLM

    from components.common.log_probs import position_ids_for, token_log_probs

    config = PolicyTuningConfig(steps=1, lora_rank=2, kl_coeff=0.1)
    torch.manual_seed(0)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    reference = make_reference(policy, str(tiny_causal_lm), config, CPU)
    _perturb_lora(policy)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    encoded = tokenizer(["the cat sat on the mat", "a dog"], return_tensors="pt", padding=True)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    response = ids[:, -3:]

    def logprobs_of(model):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_for(mask)).logits
        return token_log_probs(logits[:, -4:-1], response)

    with torch.no_grad():
        tuned_logits, _ = policy(ids, mask, 3)
        tuned = token_log_probs(tuned_logits, response)
        base = logprobs_of(AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm)))
        assert torch.allclose(reference(ids, mask, response), base, atol=1e-5)
        assert not torch.allclose(tuned, base, atol=1e-3)  # the perturbation matters

        save_causal_lm(policy.language_model, tokenizer, tmp_path / "merged")
        assert not (tmp_path / "merged" / "adapter_config.json").exists()
        merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))
        assert not any("lora" in name for name in merged.state_dict())
        assert torch.allclose(logprobs_of(merged), tuned, atol=1e-5)
    assert merged.generation_config.eos_token_id == tokenizer.eos_token_id
    assert load_tokenizer(str(tmp_path / "merged"), "left").get_vocab() == tokenizer.get_vocab()


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_rollout_log_probs_are_those_of_the_sampler(tiny_causal_lm, lora_rank):
    """Recomputed log-probs (left padding, temperature, chunked forwards) equal generate()'s own scores."""
    from transformers import GenerationConfig

    from components.common.generation import encode_prompts, mask_after_first_eos
    from components.tune_policy.rollout import policy_logprobs_and_values

    config = PolicyTuningConfig(steps=1, lora_rank=lora_rank, temperature=0.7, forward_batch_size=2)
    torch.manual_seed(0)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    _perturb_lora(policy)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    prompt_ids, prompt_mask = encode_prompts(tokenizer, PROMPTS, 32, CPU.device)
    sampling = GenerationConfig(
        max_new_tokens=6, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        output_scores=True, return_dict_in_generate=True,
    )
    output = policy.language_model.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=sampling
    )
    response = output.sequences[:, prompt_ids.shape[1] :]
    response_mask = mask_after_first_eos(response, tokenizer.eos_token_id)
    response = response.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    sampler = torch.stack(output.scores, dim=1).log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)

    logprobs, values, entropy = policy_logprobs_and_values(
        policy,
        torch.cat([prompt_ids, response], dim=1),
        torch.cat([prompt_mask, response_mask], dim=1),
        response,
        response_mask,
        config,
    )
    assert torch.allclose(logprobs * response_mask, sampler * response_mask, atol=1e-4)
    assert values.shape == response.shape
    # the entropy logged is that of the sampling distribution, on real response tokens only
    sampling_log_probs = torch.stack(output.scores, dim=1).log_softmax(-1)
    sampler_entropy = -(sampling_log_probs.exp() * sampling_log_probs).sum(-1)
    assert torch.allclose(entropy, sampler_entropy * response_mask, atol=1e-4)
    assert (entropy[response_mask == 0] == 0).all()


@pytest.mark.parametrize("lora_rank, group_size", [(0, 1), (2, 2)])
def test_log_probs_recorded_while_sampling_equal_a_forward_pass_over_the_responses(tiny_causal_lm, lora_rank, group_size):
    """GRPO/RLOO take the rollout's log-probs and entropies as generation draws the tokens (no second
    pass): they must be those of a forward pass over prompt + response (left padding, temperature,
    prompts prefilled once per group), and 0 after a response's end."""
    from components.common.generation import generate_responses
    from components.tune_policy.rollout import policy_logprobs_and_values

    config = PolicyTuningConfig(steps=1, algorithm="grpo", lora_rank=lora_rank, temperature=0.7,
                                num_generations=group_size)
    torch.manual_seed(0)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    _perturb_lora(policy)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    prompts = [prompt for prompt in PROMPTS[:4] for _ in range(group_size)]
    batch = generate_responses(policy.language_model, tokenizer, prompts, max_new_tokens=8, max_prompt_tokens=32,
                               temperature=0.7, group_size=group_size, record_log_probs=True)
    assert (batch.response_mask == 0).any() and batch.response_mask.any()  # some responses end early
    logprobs, values, entropy = policy_logprobs_and_values(
        policy, batch.input_ids, batch.attention_mask, batch.response_ids, batch.response_mask, config
    )
    assert values is None
    assert torch.allclose(batch.log_probs, logprobs * batch.response_mask, atol=1e-5)
    assert torch.allclose(batch.entropy, entropy, atol=1e-5)
    assert (batch.log_probs[batch.response_mask == 0] == 0).all()


def test_rollout_returns_the_score_on_real_tokens_only_and_flags_cut_responses(tiny_causal_lm):
    """gamma = lambda = 1 and no KL: every real token's return is its row's score; 0 after the EOS."""
    from components.tune_policy.rollout import collect_rollout

    config = PolicyTuningConfig(
        steps=1, lora_rank=0, kl_coeff=0.0, gamma=1.0, gae_lambda=1.0, whiten_advantages=False,
        max_new_tokens=4, missing_eos_penalty=0.5,
    )
    torch.manual_seed(3)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    with torch.no_grad():  # make EOS likely, so both ended and cut responses occur
        policy.language_model.lm_head.weight[load_tokenizer(str(tiny_causal_lm), "left").eos_token_id] += 3.0
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")

    def score(prompts, responses):
        return torch.tensor([float(len(r.split())) for r in responses])

    formatter = PromptFormatter(tokenizer, "auto", str(tiny_causal_lm))
    rollout = collect_rollout(policy, None, score, formatter, [Prompt(p) for p in PROMPTS] * 4, config)
    mask = rollout.response_mask.bool()
    ended = ((rollout.response_ids == tokenizer.eos_token_id) & mask).any(dim=1)
    assert torch.equal(rollout.truncated, ~ended)
    assert ended.any() and (~ended).any()
    raw = score(None, rollout.texts)
    assert torch.allclose(rollout.scores, raw - 0.5 * rollout.truncated.float())
    assert torch.equal(mask[rollout.truncated].sum(dim=1), torch.full((int(rollout.truncated.sum()),), 4))
    expected_returns = rollout.scores[:, None].expand_as(rollout.returns) * mask
    assert torch.allclose(rollout.returns, expected_returns)
    assert torch.equal(rollout.advantages[~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(rollout.values[~mask], torch.zeros(int((~mask).sum())))


# ---------------------------------------------------------------- real runs


def _scalar_events(log_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return {tag: [e.value for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_component_tunes_the_policy_towards_the_reward_model(tmp_path, tiny_causal_lm, length_reward_model):
    """Through the KFP wrapper, with a real reward model: PPO shortens responses and raises the reward."""
    from kfp.dsl import Artifact, Dataset, Metrics, Model
    from transformers import AutoModelForCausalLM

    from components.common.models import write_model_reference
    from components.tune_policy.component import tune_policy

    data = tmp_path / "prompts"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    write_model_reference(tmp_path / "base_ref", str(tiny_causal_lm), "tiny policy by reference")
    out = tmp_path / "out"
    steps, peak_learning_rate = 12, 3e-3
    tune_policy(
        base_model=Model(uri=str(tmp_path / "base_ref")), reward_model=Model(uri=str(length_reward_model)),
        prompt_data=Dataset(uri=str(data)), reinforcement_learning_train_steps=steps,
        reinforcement_learning_rate_multiplier=peak_learning_rate / 1e-5, kl_coeff=0.02, batch_size=16,
        ppo_epochs=2, ppo_minibatch_size=8, sampling_temperature=1.0, missing_eos_penalty=0.0,
        use_chat_template="auto", prompt_sequence_length=32,
        target_sequence_length=8, policy_lora_rank=0, seed=0, code_version="test",
        checkpoint_root=str(tmp_path / "checkpoints"), pipeline_root="", checkpoint_interval_steps=0, replica_count=1,
        algorithm="ppo", num_generations=4, loss_type="dapo", epsilon=0.2, epsilon_high=0.0, scale_rewards="group",
        reward_function="", sharding="auto", activation_checkpointing=False, rollout_engine="transformers",
        vllm_gpu_memory_utilization=0.3, importance_sampling_cap=3.0, policy=Model(uri=str(out / "policy")),
        metrics=Metrics(uri=str(out / "metrics")),
        tensorboard_logs=Artifact(uri=str(out / "logs")),
    )
    assert list((tmp_path / "checkpoints").iterdir()) == []  # saved along the way, deleted at the end

    metrics = json.loads((out / "metrics").read_text())
    assert metrics["steps"] == steps
    assert metrics["reward_gain"] == pytest.approx(metrics["reward_end"] - metrics["reward_start"])
    assert metrics["reward_gain"] > 0.2, metrics

    scalars = _scalar_events(out / "logs")
    for tag in (
        "reward", "kl_loss", "rl_loss", "learning_rate", "value_loss", "entropy", "clip_fraction",
        "response_length", "tokens_per_second", "time/rollout_seconds", "time/update_seconds",
    ):
        assert len(scalars[tag]) == steps, tag
    assert scalars["response_length"][-1] < scalars["response_length"][0]
    assert scalars["kl"][0] == pytest.approx(0.0, abs=1e-5)  # the first rollout is the reference policy
    assert all(math.isfinite(v) for values in scalars.values() for v in values)
    assert max(scalars["learning_rate"]) <= peak_learning_rate * (1 + 1e-6)
    assert scalars["learning_rate"][-1] < max(scalars["learning_rate"])  # linear decay

    tuned = AutoModelForCausalLM.from_pretrained(str(out / "policy"))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_causal_lm))
    assert not torch.equal(tuned.lm_head.weight, base.lm_head.weight)


def test_runs_are_deterministic_for_a_seed(tmp_path, tiny_causal_lm, length_reward_model):
    from safetensors.torch import load_file

    from components.tune_policy.training import train_policy

    config = PolicyTuningConfig(
        steps=2, batch_size=4, minibatch_size=2, epochs=1, max_new_tokens=5, max_prompt_tokens=32,
        lora_rank=2, kl_coeff=0.1, base_learning_rate=1e-2, seed=5,
    )
    prompts_path = tmp_path / "prompts.jsonl"
    prompts_path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    results = []
    for run in ("a", "b"):
        metrics = train_policy(
            config, str(tiny_causal_lm), str(length_reward_model), prompts_path, tmp_path / run / "policy",
            tmp_path / run / "logs", placement=CPU,
        )
        weights = load_file(tmp_path / run / "policy" / "model.safetensors")
        results.append((metrics, weights, _scalar_events(tmp_path / run / "logs")))
    (metrics_a, weights_a, scalars_a), (metrics_b, weights_b, scalars_b) = results
    for name in ("reward_start", "reward_end", "kl_end", "entropy_end", "response_length_end"):
        assert metrics_a[name] == metrics_b[name], name
    for tag in ("reward", "kl", "rl_loss", "value_loss", "entropy"):
        assert scalars_a[tag] == scalars_b[tag], tag
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
