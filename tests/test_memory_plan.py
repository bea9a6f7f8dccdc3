"""The memory plan (cli/memory_plan/): parameter counts from config.json, what each step holds, the refusal
with its fix, the `plan` command, and `submit` refusing a 7B full PPO on one A100 before any request."""

import pytest

from cli.main import main
from cli.memory_plan.estimate import GIB
from cli.memory_plan.fit import Device, memory_problem, plan_for, vertex_device
from components.common.errors import UserInputError
from components.common.model_architecture import PUBLIC_CONFIGS, Architecture, architecture_of
from tiny_models import build_causal_lm

A100_40GB = vertex_device("GPU")
DATA = {"preference_dataset": "pairs.jsonl", "prompt_dataset": "prompts.jsonl"}
FULL = {"policy_lora_rank": 0, "reward_model_lora_rank": 0}


def _step(values, name, device=A100_40GB):
    return next(plan for plan in plan_for({**DATA, **values}, device) if plan.step.startswith(name))


@pytest.mark.parametrize("reference", ["builtin:tiny-summarizer", "builtin:tiny-arithmetic"])
def test_the_parameter_count_of_a_built_in_model_is_that_of_the_model_its_config_builds(reference):
    from transformers import LlamaConfig, LlamaForCausalLM

    from components.common.registry import builtin_models

    sizes = {k: v for k, v in builtin_models()[reference].architecture().items() if k != "model_type"}
    assert architecture_of(reference).causal_lm_parameters() == LlamaForCausalLM(LlamaConfig(**sizes)).num_parameters()


@pytest.mark.parametrize("config_class, sizes", [
    ("Qwen2Config", dict(num_key_value_heads=2)),
    ("Gemma2Config", dict(num_key_value_heads=1, head_dim=24)),
    ("LlamaConfig", dict(num_key_value_heads=2, attention_bias=True, mlp_bias=True, tie_word_embeddings=False)),
])
def test_counts_equal_the_models_built_offline_from_small_configs(config_class, sizes):
    import transformers
    from peft import LoraConfig, get_peft_model

    config = getattr(transformers, config_class)(vocab_size=300, hidden_size=64, intermediate_size=96,
                                                 num_hidden_layers=2, num_attention_heads=4, **sizes)
    architecture = Architecture.from_config(config.to_dict(), config_class)
    causal_lm = transformers.AutoModelForCausalLM.from_config(config)
    assert architecture.causal_lm_parameters() == causal_lm.num_parameters()
    config.num_labels = 1
    assert architecture.reward_model_parameters() == transformers.AutoModelForSequenceClassification.from_config(
        config).num_parameters()
    adapted = get_peft_model(causal_lm, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert architecture.lora_parameters(4) == adapted.get_nb_trainable_parameters()[0]


def test_a_folder_with_only_a_config_json_is_enough_and_matches_the_saved_model(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = build_causal_lm(tmp_path / "model")
    expected = AutoModelForCausalLM.from_pretrained(folder).num_parameters()
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_text((folder / "config.json").read_text())
    assert architecture_of(str(config_only)).causal_lm_parameters() == expected


def test_vertex_names_plan_from_published_configs_without_a_download():
    # published sizes: Llama 2 7B 6,738,415,616 parameters, Llama 2 70B 68,976,648,192, Gemma 7B 8,537,680,896
    assert architecture_of("llama-2-7b").causal_lm_parameters() == 6_738_415_616
    assert Architecture.from_config(PUBLIC_CONFIGS["meta-llama/Llama-2-70b-hf"], "x").causal_lm_parameters() == 68_976_648_192
    assert architecture_of("gemma-7b").causal_lm_parameters() == 8_537_680_896
    with pytest.raises(UserInputError, match="no config.json of 'someone/unknown-model'"):
        architecture_of("someone/unknown-model")


def test_full_training_holds_18_bytes_a_parameter_on_a_gpu_against_the_published_16():
    # Mixed-precision Adam as ZeRO (Rajbhandari et al., 2020, section 3.1) counts it: 2 (bf16 weights) + 2 (bf16
    # gradients) + 12 (float32 master weights and two moments) = 16 bytes a parameter, ~112 GB for 7B. The
    # stages keep float32 weights and gradients and bf16 autocast copies: 4 + 2 + 4 + 8 = 18.
    policy = _step({**FULL, "large_model_reference": "llama-2-7b"}, "Tune policy").models[0]
    parameters = architecture_of("llama-2-7b").causal_lm_parameters()
    value_head = 4096 + 1
    assert (policy.weights + policy.gradients + policy.optimizer) / (parameters + value_head) == pytest.approx(18)
    assert 16 * parameters / 1e9 == pytest.approx(107.8, abs=0.1)  # the published rule of thumb for 7B


def test_lora_needs_less_than_full_training_and_kl_coeff_0_drops_the_reference():
    model = {"large_model_reference": "llama-2-7b"}
    assert _step(model, "Tune policy").total < _step({**model, **FULL}, "Tune policy").total
    assert _step(model, "Train reward model").total < _step({**model, **FULL}, "Train reward model").total
    assert [m.name for m in _step({**model, **FULL}, "Tune policy").models] == ["policy", "reference", "reward model"]
    assert [m.name for m in _step({**model, **FULL, "kl_coeff": 0.0}, "Tune policy").models] == ["policy", "reward model"]
    assert [m.name for m in _step({**model, **FULL, "algorithm": "dpo"}, "Tune policy on pairs").models] == [
        "policy", "reference"]
    rule_only = _step({**model, "algorithm": "grpo", "preference_dataset": "", "reward_function": "boxed-answer"},
                      "Tune policy")
    assert [m.name for m in rule_only.models] == ["policy"]


def test_a_smaller_minibatch_shrinks_the_update_and_only_sharding_shrinks_the_weights():
    model = {"large_model_reference": "llama-2-7b"}
    small = _step({**model, "ppo_minibatch_size": 4}, "Tune policy")
    assert small.models[0].activations < _step(model, "Tune policy").models[0].activations
    checkpointed = _step({**model, "activation_checkpointing": True}, "Tune policy")
    assert checkpointed.models[0].activations < _step(model, "Tune policy").models[0].activations / 2
    one = _step({**model, **FULL}, "Tune policy").models[0]
    replicated = _step({**model, **FULL, "accelerator_count": 2, "sharding": "none"}, "Tune policy").models[0]
    assert replicated.weights > one.weights  # DDP buckets
    # 7B trained in full: 18 bytes a weight is over half of a 40 GB A100, so "auto" shards between 2 GPUs
    sharded = _step({**model, **FULL, "accelerator_count": 2}, "Tune policy")
    assert sharded == _step({**model, **FULL, "accelerator_count": 2, "sharding": "fsdp"}, "Tune policy")
    policy, reference = sharded.models[:2]
    layers = 32
    # two decoder layers gathered, and the embeddings and LM head (untied) gathered from forward to backward
    root = 2 * 32000 * 4096 / 6_738_415_616
    assert policy.weights == pytest.approx(one.weights / 2 + 2 * one.weights / layers, rel=1e-6)
    assert policy.gradients == pytest.approx(one.gradients / 2 + root * (one.weights + one.gradients), rel=1e-6)
    assert policy.optimizer == pytest.approx(one.optimizer / 2, abs=1)
    assert policy.kv_cache == pytest.approx(one.kv_cache / 2 + one.weights / 2, rel=1e-3)  # gathered to generate
    assert reference.weights < _step({**model, **FULL}, "Tune policy").models[1].weights * 0.6
    assert "sharded (FSDP2) between 2 GPUs" in " ".join(sharded.notes)
    lora = {**model, "accelerator_count": 2}  # LoRA: a replica is well under half a GPU, "auto" does not shard
    assert "sharded" not in " ".join(_step(lora, "Tune policy").notes)


def test_a_vllm_engine_takes_its_share_of_the_gpu_while_it_samples_and_its_copy_on_the_cpu():
    model = {"large_model_reference": "llama-2-7b", "algorithm": "grpo"}
    generate = _step(model, "Tune policy")
    engine = _step({**model, "rollout_engine": "vllm", "vllm_gpu_memory_utilization": 0.5}, "Tune policy")
    assert [m.name for m in engine.models][-1] == "vLLM engine"
    assert engine.models[-1].weights == 0  # asleep during the update
    assert engine.models[-1].kv_cache == int(0.5 * A100_40GB.memory)
    assert engine.models[0].kv_cache == 0 and generate.models[0].kv_cache > 0  # the policy no longer generates
    generation_phase = lambda plan: sum(m.gradients + m.kv_cache for m in plan.models)  # noqa: E731
    assert generation_phase(engine) == generation_phase(generate) - generate.models[0].kv_cache + int(0.5 * A100_40GB.memory)
    batch_of_4 = {"batch_size": 4, "ppo_minibatch_size": 4}  # small activations: the generation phase is the peak
    assert (_step({**model, **batch_of_4, "rollout_engine": "vllm", "vllm_gpu_memory_utilization": 0.5}, "Tune policy").total
            > _step({**model, **batch_of_4}, "Tune policy").total)
    assert _step({**model, "rollout_engine": "auto"}, "Tune policy") == generate  # the default image has no vLLM
    cpu = Device("CPU RAM", 64 * GIB, on_gpu=False, vertex=False)
    on_cpu = _step({**model, "rollout_engine": "vllm"}, "Tune policy", cpu).models[-1]
    parameters = architecture_of("llama-2-7b").causal_lm_parameters()
    assert on_cpu.weights == parameters * 4 + GIB and on_cpu.kv_cache == 0  # float32 weights, 1 GiB of KV cache


def test_the_refusal_names_the_step_its_need_the_device_and_a_fix_that_fits():
    values = {**DATA, **FULL, "large_model_reference": "llama-2-7b"}
    problem = memory_problem(values, A100_40GB)
    assert problem.startswith("memory plan: step 'Train reward model' needs ")
    assert "NVIDIA_TESLA_A100 has 40.0 GiB" in problem
    fix = problem.split("cheapest fix that fits: ")[1]
    assert fix.startswith("--set reward_model_lora_rank=4")
    assert memory_problem({**values, "reward_model_lora_rank": 4, "policy_lora_rank": 1, "batch_size": 2,
                           "ppo_minibatch_size": 2}, A100_40GB) is None
    # 70B: its LoRA reward model's bf16 weights alone (140 GB) fit no single GPU; sharded over 4 H100s they do
    llama_70b = {**DATA, "large_model_reference": "meta-llama/Llama-2-70b-hf"}
    sharded = memory_problem(llama_70b, vertex_device("NVIDIA_H100_80GB"))
    assert sharded.startswith("memory plan: step 'Train reward model' needs ")
    assert "cheapest fix that fits: --set accelerator_count=4 --set sharding=fsdp (needs " in sharded
    too_big = memory_problem(llama_70b, vertex_device("NVIDIA_TESLA_T4"))  # at most 4 T4s a machine on Vertex
    assert "no single setting tried fits" in too_big and too_big.endswith(
        "more GPUs and machines, sharded): use a smaller model (`rlhf-pipeline plan` shows every step)")


def test_a_sharded_rl_step_counts_the_gpus_of_every_machine():
    """Llama-2-7b trained in full with GRPO on long sequences, on 8 x A100 80GB: the sharded policy does not fit
    one machine's 8 GPUs; over replica_count 2 machines (16 GPUs) it does."""
    device = vertex_device("NVIDIA_A100_80GB")
    values = {**DATA, "large_model_reference": "llama-2-7b", "policy_lora_rank": 0, "reward_model_lora_rank": 4,
              "algorithm": "grpo", "reward_function": "math-answer", "num_generations": 8,
              "prompt_sequence_length": 3072, "target_sequence_length": 1024, "accelerator_count": 8,
              "sharding": "fsdp"}
    one, two = (_step({**values, "replica_count": machines}, "Tune policy") for machines in (1, 2))
    assert one.total > device.memory >= two.total
    assert two.models[0].optimizer == pytest.approx(one.models[0].optimizer / 2, rel=1e-3)
    assert "sharded (FSDP2) between 16 GPUs" in " ".join(two.notes)
    assert memory_problem({**values, "replica_count": 2}, device) is None
    # more machines are offered only where submit can ask for them: Vertex machines of 8 such GPUs
    from cli.memory_plan.fit import _candidates, local_device, with_defaults

    def machine_counts(on):
        return [change.get("replica_count") for _, change, _, _ in _candidates(with_defaults(values), one.step, on)
                if "replica_count" in change]

    assert machine_counts(device) == [2]  # ppo_minibatch_size 16 is not shared by 32 GPUs
    assert machine_counts(vertex_device("NVIDIA_TESLA_T4")) == machine_counts(local_device()) == []


def test_plan_prints_a_table_per_step_and_the_sample_task_fits(capsys):
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "Train reward model (GiB;" in out and "Tune policy (RL): PPO (GiB;" in out
    assert "model         weights  gradients  optimizer  activations  KV cache  total" in out
    assert out.count("fits: yes") == 2 and "NVIDIA_TESLA_A100 has 40.00 GiB" in out


def test_plan_of_a_7b_full_ppo_exits_1_with_the_fix(capsys):
    assert main(["plan", "--set", "large_model_reference=llama-2-7b", "--set", "policy_lora_rank=0",
                 "--set", "reward_model_lora_rank=4",
                 "--sample-task", "summaries"]) == 1
    captured = capsys.readouterr()
    assert "fits: NO" in captured.out and "reference " in captured.out
    assert "memory plan: step 'Tune policy (RL): PPO' needs" in captured.err


def test_submit_dry_run_of_a_7b_full_ppo_on_one_a100_is_refused_before_any_request(tmp_path):
    import json

    from fakes.cloud import google_cloud_fakes
    from fakes.templates import COURSE_PARAMETER_VALUES, add_course_datasets, compile_rlhf_template
    from test_submit_vertex import _submit_args

    template = compile_rlhf_template(tmp_path / "template")
    course = tmp_path / "course.json"
    course.write_text(json.dumps({**COURSE_PARAMETER_VALUES, **FULL}))
    with google_cloud_fakes(tmp_path / "home") as fakes:
        add_course_datasets(fakes.gcs)
        from cli.commands import submit

        args = _parse(_submit_args(template, fakes, "--params", str(course), "--dry-run"))
        with pytest.raises(UserInputError) as refused:
            submit.main(args)
        assert fakes.all_requests() == [] and fakes.resource_manager.requests == []
    message = str(refused.value)
    assert "step 'Train reward model' needs" in message and "NVIDIA_TESLA_A100 has 40.0 GiB" in message
    assert "cheapest fix that fits: --set reward_model_lora_rank=4" in message


def _parse(argv):
    from cli.main import build_parser

    return build_parser().parse_args(argv)


def test_readme_scale_table_is_the_estimators():
    from cli.memory_plan.tables import scale_table
    from conftest import REPO_ROOT

    assert scale_table() in (REPO_ROOT / "README.md").read_text()


def test_scale_rows_fit_where_the_readme_says():
    from cli.memory_plan.tables import scale_rows

    rows = {(r["model"].split()[0], r["algorithm"], r["training"]): r for r in scale_rows()}
    assert rows[("1B", "DPO", "LoRA")]["fits"] and rows[("1B", "DPO", "LoRA")]["fix"].setting == ""
    assert rows[("70B", "PPO", "LoRA")]["fix"] is None  # the whole 70B policy is gathered to generate
    full_7b = rows[("7B", "PPO", "full")]
    assert full_7b["needs"] > 80 * GIB and not full_7b["fits"]
    # every step fits once each failing one gets its fix: the reward model through LoRA, the RL step sharded
    assert full_7b["fix"].setting == "reward_model_lora_rank=4 accelerator_count=8 sharding=fsdp"
    device = vertex_device("NVIDIA_A100_80GB")
    assert all(device.holds(plan, 8) for plan in plan_for(full_7b["fix"].values, device))
