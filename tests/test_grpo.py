"""GRPO and RLOO on the shared RL engine: their maths by hand, short real runs, a rule reward, resume."""

import json
import math

import pytest
import torch

from components.common.errors import UserInputError
from components.common.models import Placement
from components.tune_policy.config import PolicyTuningConfig
from components.tune_policy.group_math import (
    aggregated_loss,
    check_some_rewarded,
    group_advantages,
    group_reward_statistics,
    k3_kl,
    leave_one_out_advantages,
)
from components.tune_policy.ppo_math import clipped_ratio_loss
from tiny_models import PROMPTS

CPU = Placement(torch.device("cpu"), torch.float32)
NAN = float("nan")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------- maths, checked by hand


def test_group_advantages_centre_on_the_group_and_scale_as_asked():
    rewards = torch.tensor([1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 0.0])
    # group 0: mean 3, sample std sqrt(14/3); group 1: all equal, advantages 0
    std0 = math.sqrt(14 / 3)
    expected_group = torch.tensor([-2 / (std0 + 1e-4), -1 / (std0 + 1e-4), 0.0, 3 / (std0 + 1e-4), 0, 0, 0, 0])
    assert torch.allclose(group_advantages(rewards, 4, "group"), expected_group)
    assert torch.allclose(group_advantages(rewards, 4, "none"), torch.tensor([-2.0, -1, 0, 3, 0, 0, 0, 0]))
    batch_std = float(rewards.std())  # Bessel-corrected over the whole batch
    expected_batch = torch.tensor([-2.0, -1, 0, 3, 0, 0, 0, 0]) / (batch_std + 1e-4)
    assert torch.allclose(group_advantages(rewards, 4, "batch"), expected_batch)


def test_rloo_baseline_is_the_mean_of_the_other_responses():
    rewards = torch.tensor([1.0, 2.0, 6.0, 5.0, 5.0, 5.0])
    # 1 - (2+6)/2 = -3; 2 - (1+6)/2 = -1.5; 6 - (1+2)/2 = 4.5; equal rewards: 0
    assert torch.allclose(leave_one_out_advantages(rewards, 3), torch.tensor([-3.0, -1.5, 4.5, 0, 0, 0]))


def test_responses_without_reward_count_in_no_baseline_and_get_no_advantage():
    rewards = torch.tensor([1.0, NAN, 3.0, NAN, NAN, 4.0])
    # group 0 is (1, 3): mean 2, std sqrt(2); group 1 has one reward: no spread, advantage 0
    grpo = group_advantages(rewards, 3, "none")
    assert torch.allclose(grpo, torch.tensor([-1.0, 0, 1, 0, 0, 0]))
    scaled = group_advantages(rewards, 3, "group")
    assert torch.allclose(scaled, torch.tensor([-1 / (math.sqrt(2) + 1e-4), 0, 1 / (math.sqrt(2) + 1e-4), 0, 0, 0]))
    rloo = leave_one_out_advantages(rewards, 3)
    assert torch.allclose(rloo, torch.tensor([-2.0, 0, 2, 0, 0, 0]))  # a lone reward has no baseline: 0
    assert not torch.isnan(group_advantages(rewards, 3, "batch")).any()
    statistics = group_reward_statistics(rewards, 3)
    assert statistics["unrewarded_fraction"] == pytest.approx(0.5)
    assert statistics["zero_reward_fraction"] == 0.0
    assert group_reward_statistics(torch.tensor([0.0, 0.0, 1.0, NAN]), 2)["zero_reward_fraction"] == pytest.approx(2 / 3)
    assert statistics["reward_std_within_groups"] == pytest.approx(math.sqrt(2) / 2)
    check_some_rewarded(rewards)
    with pytest.raises(UserInputError, match="no response of this step's 4 got a reward"):
        check_some_rewarded(torch.full((4,), NAN))


def test_clipping_uses_epsilon_below_and_epsilon_high_above():
    ratios = torch.tensor([1.5, 1.25, 0.7, 0.9, 0.7])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0])
    logprobs = ratios.log().requires_grad_()
    loss, low, high = clipped_ratio_loss(logprobs, torch.zeros(5), advantages, epsilon=0.2, epsilon_high=0.28)
    # 1.5 > 1.28: clipped at 1.28; 1.25 < 1.28: not clipped (it would be with a symmetric 0.2);
    # 0.7 < 0.8 with A < 0: clipped at 0.8; 0.9 inside; 0.7 with A > 0: the unclipped term is the larger
    assert torch.allclose(loss, torch.tensor([-1.28, -1.25, 0.8, 0.9, -0.7]))
    assert low.tolist() == [False, False, True, False, False]
    assert high.tolist() == [True, False, False, False, False]
    loss.sum().backward()
    assert torch.allclose(logprobs.grad, torch.tensor([0.0, -1.25, 0.0, 0.9, -0.7]))
    symmetric, _, high = clipped_ratio_loss(ratios.log(), torch.zeros(5), advantages, 0.2, 0.2)
    assert symmetric[1] == pytest.approx(-1.2) and high[1]


def test_loss_types_average_token_losses_as_trl_names_them():
    losses = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    # dapo: token mean over the minibatch (10 / 4); grpo: mean of row means ((2 + 4) / 2); dr_grpo: 10 / (2 * 3)
    assert float(aggregated_loss(losses, mask, "dapo", 1.0) / 4) == pytest.approx(2.5)
    assert float(aggregated_loss(losses, mask, "grpo", 2.0)) == pytest.approx(3.0)
    assert float(aggregated_loss(losses, mask, "dr_grpo", 6.0)) == pytest.approx(10 / 6)
    assert float(k3_kl(torch.tensor(0.0), torch.tensor(0.0))) == 0.0
    assert float(k3_kl(torch.tensor(-1.0), torch.tensor(0.0))) == pytest.approx(math.exp(1) - 2)


def test_config_validates_the_grouped_settings():
    PolicyTuningConfig(steps=1, algorithm="grpo", batch_size=8, num_generations=4, minibatch_size=8).validate()
    PolicyTuningConfig(steps=1, batch_size=6, minibatch_size=2, num_generations=4).validate()  # PPO ignores it
    with pytest.raises(UserInputError) as error:
        PolicyTuningConfig(steps=1, algorithm="rloo", batch_size=6, num_generations=4, minibatch_size=2,
                  loss_type="bnpo", scale_rewards="max").validate()
    for expected in ("multiple of num_generations 4", "loss_type", "scale_rewards"):
        assert expected in str(error.value)
    with pytest.raises(UserInputError, match="algorithm must be one of"):
        PolicyTuningConfig(steps=1, algorithm="dpo").validate()
    with pytest.raises(UserInputError, match="whole groups"):
        PolicyTuningConfig(steps=1, algorithm="grpo", batch_size=12, num_generations=4, minibatch_size=2).validate(processes=2)
    assert PolicyTuningConfig(steps=1, epsilon=0.2).clip_high == 0.2
    assert PolicyTuningConfig(steps=1, epsilon=0.2, epsilon_high=0.28).clip_high == 0.28


# ---------------------------------------------------------------- real runs


def _write_prompts(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _grouped_config(algorithm: str, **overrides) -> PolicyTuningConfig:
    settings = dict(
        steps=10, algorithm=algorithm, batch_size=16, num_generations=4, minibatch_size=8, epochs=2,
        max_new_tokens=8, max_prompt_tokens=32, lora_rank=0, kl_coeff=0.02, base_learning_rate=3e-3,
        missing_eos_penalty=0.0, seed=0,
    )
    settings.update(overrides)
    return PolicyTuningConfig(**settings)


def _scalars(log_dir):
    from test_tune_policy import _scalar_events

    return _scalar_events(log_dir)


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_grouped_runs_raise_the_reward_of_the_length_reward_model(
    tmp_path, tiny_causal_lm, length_reward_model, algorithm
):
    from components.tune_policy.training import train_policy

    prompts = _write_prompts(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])
    config = _grouped_config(algorithm)
    metrics = train_policy(config, str(tiny_causal_lm), str(length_reward_model), prompts, tmp_path / "policy",
                           tmp_path / "logs", placement=CPU)
    assert metrics["reward_gain"] > 0.2, metrics
    scalars = _scalars(tmp_path / "logs")
    for tag in ("reward", "kl_loss", "rl_loss", "learning_rate", "entropy", "clip_fraction", "reward_std_within_groups",
                "groups_with_equal_rewards", "response_length"):
        assert len(scalars[tag]) == config.steps, tag
    assert "value_loss" not in scalars and "value_explained_variance" not in scalars
    assert all(math.isfinite(v) for values in scalars.values() for v in values)
    assert (tmp_path / "policy" / "model.safetensors").is_file()


def test_grpo_has_no_value_head_and_no_reference_without_kl(tiny_causal_lm, monkeypatch):
    from components.tune_policy.optimization import build_optimizer
    from components.tune_policy.policy_model import load_policy, make_reference

    config = _grouped_config("grpo", kl_coeff=0.0, lora_rank=2)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    assert policy.value_head is None
    assert not any("value_head" in name for name, _ in policy.named_parameters())
    assert make_reference(policy, str(tiny_causal_lm), config, CPU) is None
    optimizer, _ = build_optimizer(policy, config)
    assert len(optimizer.param_groups) == 1


SHORT_ANSWER_REWARD = '''
def short_answer(completions, ground_truth, **kwargs):
    """TRL-style: 1 for an answer of at most `ground_truth` words, less the longer it is; None without a truth."""
    rewards = []
    for completion, limit in zip(completions, ground_truth):
        if limit is None:
            rewards.append(None)
        else:
            words = len(completion.split())
            rewards.append(1.0 if words <= int(limit) else -0.25 * (words - int(limit)))
    return rewards
'''


def test_grpo_with_a_rule_reward_function_reads_the_columns_and_raises_the_reward(tmp_path, tiny_causal_lm):
    from components.tune_policy.training import train_policy

    (tmp_path / "rules.py").write_text(SHORT_ANSWER_REWARD)
    rows = [{"prompt": p, "columns": {"ground_truth": "2"}} for p in PROMPTS]
    rows.append({"prompt": PROMPTS[0] + " again", "columns": {}})  # no ground truth: no reward
    prompts = _write_prompts(tmp_path / "prompts.jsonl", rows)
    config = _grouped_config("grpo", reward_function=f"{tmp_path / 'rules.py'}:short_answer", kl_coeff=0.0, steps=12)
    metrics = train_policy(config, str(tiny_causal_lm), "", prompts, tmp_path / "policy", tmp_path / "logs",
                           placement=CPU)
    assert metrics["reward_gain"] > 0.2, metrics
    scalars = _scalars(tmp_path / "logs")
    assert all(math.isfinite(v) for v in scalars["reward"])
    assert max(scalars["unrewarded_fraction"]) > 0  # the row without ground truth was drawn and left out

    with pytest.raises(UserInputError, match="needs the column 'ground_truth'"):
        train_policy(config, str(tiny_causal_lm), "", _write_prompts(tmp_path / "bare.jsonl", [{"prompt": "a"}]),
                     tmp_path / "p2", tmp_path / "l2", placement=CPU)
    with pytest.raises(UserInputError, match="needs a reward"):
        train_policy(_grouped_config("grpo"), str(tiny_causal_lm), "", prompts, tmp_path / "p3", tmp_path / "l3",
                     placement=CPU)


def test_reward_model_and_function_together_are_summed(tiny_causal_lm):
    from components.common.reward_functions import load_reward_function
    from components.common.data.transcripts import Prompt
    from components.tune_policy.rewards import RolloutRewards

    def model_score(prompts, texts):
        return torch.tensor([10.0] * len(texts))

    rewards = RolloutRewards(model_score, load_reward_function("gsm8k-answer"))
    scores = rewards([Prompt("q")] * 3, ["#### 4", "#### 5", "#### 4"], [[1], [2], [3]],
                     [{"ground_truth": "4"}, {"ground_truth": "4"}, {}])
    assert scores.tolist() == [11.0, 10.0, 10.0]  # no ground truth: the reward model's score alone
    alone = RolloutRewards(None, load_reward_function("gsm8k-answer"))
    scores = alone([Prompt("q")] * 2, ["#### 4", "#### 4"], [[1], [2]], [{"ground_truth": "4"}, {}])
    assert scores[0] == 1.0 and math.isnan(scores[1])


def test_grpo_killed_halfway_resumes_and_ends_as_an_uninterrupted_run(
    tmp_path, tiny_causal_lm, length_reward_model, capsys
):
    from components.tune_policy.training import train_policy
    from test_checkpoints import (
        WALL_CLOCK_METRICS,
        assert_killed_at_the_second_checkpoint,
        run_until_blocked,
        scalars,
        weight_files,
    )

    config = _grouped_config("grpo", steps=6, batch_size=8, minibatch_size=4, max_new_tokens=5, lora_rank=2,
                             kl_coeff=0.1, base_learning_rate=1e-2, seed=5, epsilon_high=0.28)
    prompts_path = _write_prompts(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])
    sources = dict(policy_source=str(tiny_causal_lm), reward_source=str(length_reward_model),
                   prompts_path=str(prompts_path))
    straight = train_policy(config, **sources, output_dir=tmp_path / "straight" / "policy",
                            log_dir=tmp_path / "straight" / "logs", placement=CPU)

    folder = tmp_path / "checkpoints" / "tune_policy-0123"
    attempt = dict(**sources, output_dir=str(tmp_path / "resumed" / "policy"),
                   log_dir=str(tmp_path / "resumed" / "logs"), checkpoint_dir=str(folder), checkpoint_interval_steps=2)
    run_until_blocked(tmp_path, "ppo", config, block_at="checkpoint-4", **attempt)
    assert_killed_at_the_second_checkpoint(folder)
    from torch.distributed.checkpoint import FileSystemReader

    saved = FileSystemReader(folder / "checkpoint-2" / "training_state").read_metadata().state_dict_metadata
    weights = [name for name in saved if name.startswith("weights.")]
    assert weights and all("lora_" in name for name in weights)  # the adapters alone: no value head

    capsys.readouterr()
    resumed = train_policy(config, placement=CPU, **attempt)
    assert "resuming GRPO from step 2 of 6" in capsys.readouterr().out
    deterministic = {name: value for name, value in straight.items() if name not in WALL_CLOCK_METRICS}
    assert {name: resumed[name] for name in deterministic} == deterministic
    assert weight_files(tmp_path / "resumed" / "policy") == weight_files(tmp_path / "straight" / "policy")
    assert scalars(tmp_path / "resumed" / "logs") == scalars(tmp_path / "straight" / "logs")
    assert not folder.exists()


def test_each_process_rolls_out_whole_groups():
    """The step's rows (each prompt num_generations times in a row, as train_policy lays them out) are
    shared so that no group straddles two processes; a batch that cannot share so is refused."""
    from components.common.distributed import TrainingProcesses

    config = _grouped_config("grpo", batch_size=16, num_generations=4, minibatch_size=8)
    config.validate(processes=2)
    rows = [prompt for prompt in "abcd" for _ in range(config.num_generations)]
    shares = [TrainingProcesses(rank=rank, count=2).shard(rows) for rank in range(2)]
    assert shares == [list("aaaabbbb"), list("ccccdddd")]
    with pytest.raises(UserInputError, match="whole groups"):
        _grouped_config("grpo", batch_size=12, num_generations=4, minibatch_size=6).validate(processes=2)


def test_grpo_in_two_processes_trains_and_logs_once(tmp_path, tiny_causal_lm, length_reward_model):
    from components.common.distributed import run_in_processes
    from components.tune_policy.training import train_policy
    from test_tune_policy import _scalar_events

    config = _grouped_config("grpo", steps=2, batch_size=8, minibatch_size=4, forward_batch_size=2, epochs=1,
                             lora_rank=2, kl_coeff=0.1, max_new_tokens=5, scale_rewards="batch")
    prompts_path = _write_prompts(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])
    metrics = run_in_processes(
        2, train_policy, config, policy_source=str(tiny_causal_lm), reward_source=str(length_reward_model),
        prompts_path=str(prompts_path), output_dir=str(tmp_path / "policy"), log_dir=str(tmp_path / "logs"),
    )
    assert metrics["steps"] == 2
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1
    scalars = _scalar_events(tmp_path / "logs")
    assert len(scalars["reward_std_within_groups"]) == 2
    assert scalars["response_tokens"][0] <= 8 * 5  # every process's responses counted once


@pytest.mark.parametrize("algorithm, loss_type", [("grpo", "grpo"), ("grpo", "dr_grpo"), ("grpo", "dapo"),
                                                  ("rloo", "sequence"), ("grpo", "auto"), ("rloo", "auto")])
def test_the_update_step_takes_the_gradient_of_the_loss_type_trl_names(tiny_causal_lm, algorithm, loss_type):
    """One minibatch of 4 responses of different lengths, forwarded in chunks of 1 row: the update's
    gradient is that of TRL's loss on the whole minibatch (ratio 1, so the policy term is -A * logp's
    gradient), plus GRPO's k3 KL term; each loss type averages the tokens its own way, and RLOO's
    "sequence" (TRL's RLOOTrainer) takes one ratio per response from its summed log-probabilities."""
    from components.common.log_probs import token_log_probs
    from components.common.models import load_tokenizer
    from components.tune_policy.group_math import k3_kl
    from components.tune_policy.policy_model import load_policy
    from components.tune_policy.update import update_policy
    from components.tune_policy.rollout import Rollout

    config = _grouped_config(algorithm, steps=1, batch_size=4, minibatch_size=4, forward_batch_size=1, epochs=1,
                             lora_rank=0, kl_coeff=0.3, max_new_tokens=3, loss_type=loss_type, max_grad_norm=1e9,
                             temperature=0.7)
    policy = load_policy(str(tiny_causal_lm), config, CPU)
    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    encoded = tokenizer(PROMPTS[:4], return_tensors="pt", padding=True)
    response_ids = torch.randint(3, tokenizer.vocab_size, (4, 3), generator=torch.Generator().manual_seed(0))
    response_mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    input_ids = torch.cat([encoded["input_ids"], response_ids], dim=1)
    attention_mask = torch.cat([encoded["attention_mask"], response_mask], dim=1)
    with torch.no_grad():
        logits, _ = policy(input_ids, attention_mask, 3)
        logprobs = token_log_probs(logits, response_ids, config.temperature)
    ref_logprobs = logprobs - 0.1 * torch.arange(12.0).reshape(4, 3) / 12  # a reference a little apart
    advantages = torch.tensor([[1.0], [-0.5], [2.0], [-1.5]]) * response_mask
    rollout = Rollout(input_ids=input_ids, attention_mask=attention_mask, response_ids=response_ids,
                      response_mask=response_mask, logprobs=logprobs, values=None, advantages=advantages,
                      returns=None, scores=torch.zeros(4), kl=torch.zeros(4, 3), entropy=torch.zeros(4, 3),
                      truncated=torch.zeros(4, dtype=torch.bool), texts=[""] * 4, generation_seconds=0.0, seconds=0.0,
                      ref_logprobs=ref_logprobs)

    policy.zero_grad()
    logits, _ = policy(input_ids, attention_mask, 3)
    current = token_log_probs(logits, response_ids, config.temperature)
    token_losses = -advantages * torch.exp(current - current.detach()) + config.kl_coeff * k3_kl(current, ref_logprobs)
    mask = response_mask.float()
    summed = (current * mask).sum(1)
    expected_loss = {
        "grpo": ((token_losses * mask).sum(1) / mask.sum(1)).mean(),  # mean over responses of token means
        "dapo": (token_losses * mask).sum() / mask.sum(),  # every token of the minibatch alike
        "dr_grpo": (token_losses * mask).sum() / (4 * config.max_new_tokens),  # a constant: no length bias
        "sequence": (-advantages[:, 0] * torch.exp(summed - summed.detach())).mean(),  # RLOO: KL is in the reward
    }[{"auto": {"grpo": "dapo", "rloo": "sequence"}[algorithm]}.get(loss_type, loss_type)]  # TRL's own loss
    expected_loss.backward()
    expected = {name: p.grad.clone() for name, p in policy.named_parameters() if p.requires_grad}

    weights = {name: p.detach().clone() for name, p in policy.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    update_policy(policy, optimizer, scheduler, rollout, config, torch.Generator().manual_seed(0))
    for name, parameter in policy.named_parameters():
        if parameter.requires_grad:  # SGD at rate 1: the step is minus the gradient
            torch.testing.assert_close(weights[name] - parameter.detach(), expected[name], atol=1e-6, rtol=1e-4)


def test_rloos_sequence_loss_clips_a_responses_summed_ratio_where_no_token_ratio_is_clipped():
    """Four tokens each 10% likelier than when sampled: no token's ratio (1.1) leaves [0.8, 1.2], but the
    response's (1.1^4 = 1.46) does, so TRL's RLOO loss stops that response's gradient; the per-token
    loss does not."""
    from components.tune_policy.ppo_math import clipped_ratio_loss

    old = torch.zeros(2, 4)
    current = (old + math.log(1.1)).requires_grad_()
    advantages = torch.tensor([1.0, 1.0])
    sequence_loss, _, high = clipped_ratio_loss(current.sum(1), old.sum(1), advantages, 0.2, 0.2)
    sequence_loss.sum().backward()
    assert high.tolist() == [True, True] and torch.count_nonzero(current.grad) == 0
    current.grad = None
    token_loss, _, high = clipped_ratio_loss(current, old, advantages[:, None].expand(2, 4), 0.2, 0.2)
    token_loss.sum().backward()
    assert not high.any() and torch.count_nonzero(current.grad) == 8


def test_sequence_loss_is_rloos_alone():
    with pytest.raises(UserInputError, match="RLOO's"):
        _grouped_config("grpo", steps=1, loss_type="sequence").validate()
    _grouped_config("rloo", steps=1, loss_type="sequence").validate()


def test_a_run_whose_groups_never_differ_says_it_learned_nothing_and_why():
    from components.common.learning_signal import missing_learning_signal

    silent = {"groups_with_equal_rewards": 1.0, "zero_reward_fraction": 1.0, "truncated_fraction": 0.25}
    warning = missing_learning_signal([silent, silent, silent], num_generations=8)
    assert warning.startswith("no learning signal in any of the 3 steps: the 8 responses of every group")
    assert "100.0% of rewards were 0 and 25.0% of responses were cut at target_sequence_length" in warning
    assert "\\boxed{}" in warning and "raise target_sequence_length" in warning
    assert missing_learning_signal([silent, {**silent, "groups_with_equal_rewards": 0.75}], 8) is None
    assert missing_learning_signal([], 8) is None


def test_grpo_stage_warns_when_the_reward_never_differs(tmp_path, tiny_causal_lm, capsys):
    """A rule that gives every answer 0 (as a boxed-answer reward gives a model that never writes one):
    the stage finishes, reports no step with a learning signal and prints the warning the console shows."""
    from components.tune_policy.training import train_policy

    rule = tmp_path / "never.py"
    rule.write_text("def never(completions, **kwargs):\n    return [0.0] * len(completions)\n")
    config = _grouped_config("grpo", steps=2, batch_size=8, minibatch_size=8, epochs=1, max_new_tokens=4,
                             reward_function=f"{rule}:never")
    prompts_path = _write_prompts(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])
    metrics = train_policy(config, policy_source=str(tiny_causal_lm), reward_source="", prompts_path=str(prompts_path),
                           output_dir=str(tmp_path / "policy"), log_dir=str(tmp_path / "logs"), placement=CPU)
    assert metrics["steps_with_learning_signal"] == 0
    assert "warning: no learning signal in any of the 2 steps" in capsys.readouterr().out


def test_the_evaluation_report_says_a_run_with_a_reward_that_is_always_0_learned_nothing(tmp_path, tiny_causal_lm,
                                                                                          capsys):
    """The same rule, then the evaluation of that run: its report, evaluation.json and stage output say there was
    no learning signal and why; a run whose rewards differ says nothing of the kind."""
    from components.evaluate.config import EvaluationConfig
    from components.evaluate.evaluation import EvaluationOutputs, run_evaluation
    from components.tune_policy.training import train_policy

    rule = tmp_path / "rules.py"
    rule.write_text("def never(completions, **kwargs):\n    return [0.0] * len(completions)\n\n"
                    "def length(completions, **kwargs):\n    return [float(len(c)) for c in completions]\n")
    prompts_path = _write_prompts(tmp_path / "prompts.jsonl", [{"prompt": p} for p in PROMPTS])

    def tune_and_evaluate(name: str) -> tuple[dict, str]:
        config = _grouped_config("grpo", steps=2, batch_size=8, minibatch_size=8, epochs=1, max_new_tokens=4,
                                 reward_function=f"{rule}:{name}")
        train_policy(config, policy_source=str(tiny_causal_lm), reward_source="", prompts_path=str(prompts_path),
                     output_dir=str(tmp_path / name / "policy"), log_dir=str(tmp_path / name / "logs"), placement=CPU)
        out = tmp_path / name / "evaluation"
        result = run_evaluation(
            EvaluationConfig(max_new_tokens=4, max_prompt_tokens=32, max_eval_prompts=4, reward_function=f"{rule}:{name}"),
            base_source=str(tiny_causal_lm), tuned_source=str(tmp_path / name / "policy"), reward_source=None,
            eval_pairs_path=None, eval_prompts_path=prompts_path, reward_logs_dir=None,
            policy_logs_dir=tmp_path / name / "logs", placement=CPU,
            outputs=EvaluationOutputs(out / "report.html", out / "report.md", out / "predictions", out / "evaluation.json"))
        return result.evaluation["tuning"], (out / "report.md").read_text() + (out / "report.html").read_text()

    tuning, reports = tune_and_evaluate("never")
    assert tuning["policy_steps_logged"] == 2 and tuning["steps_with_learning_signal"] == 0
    assert "No learning: " in reports and reports.count("no learning signal in any of the 2 steps") == 2
    assert "a reward the model never earns" in reports and "cut at target_sequence_length" in reports
    last_line = capsys.readouterr().out.splitlines()[-1]  # the evaluation's, which the console shows
    assert last_line.startswith("warning: ") and "no learning signal in any of the 2 steps" in last_line

    tuning, reports = tune_and_evaluate("length")
    assert tuning["steps_with_learning_signal"] == 2 and tuning["warning"] is None and not tuning["tuned_equals_base"]
    assert "No learning" not in reports
