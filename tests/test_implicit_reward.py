"""DPO's implicit reward on held-out pairs: margins are the answers' summed log-ratios, policy against
reference, whatever the padding of the batch."""

import math

import pytest
import torch

from components.common.data.transcripts import Prompt
from components.common.models import Placement, load_tokenizer
from components.common.canonical_data import CanonicalPair
from components.common.implicit_reward import implicit_reward_accuracy

CPU = Placement(torch.device("cpu"), torch.float32)
# Prompts and answers of different lengths, so that batches pad both.
PAIRS = [
    CanonicalPair(Prompt("the cat sat on the mat [summary]:"), "good cat", "bad the dog ran in the park"),
    CanonicalPair(Prompt("my day [summary]:"), "a good day today", "sad"),
    CanonicalPair(Prompt("i was happy today and the dog was happy [summary]:"), "happy", "no"),
    CanonicalPair(Prompt("a short post about my cat [summary]:"), "short post", "long long long post"),
    CanonicalPair(Prompt("the dog [summary]:"), "yes", "the dog sat"),
]


def answer_log_prob(model, tokenizer, prompt: str, answer: str) -> float:
    """log p(answer + EOS | prompt), one unpadded sequence: the prompt's ids, then the answer's own."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        log_probs = model(input_ids=ids).logits[0].float().log_softmax(-1)
    positions = range(len(prompt_ids) - 1, ids.shape[1] - 1)
    return sum(log_probs[position, ids[0, position + 1]].item() for position in positions)


def test_a_policy_against_itself_orders_no_pair(tiny_causal_lm):
    figures = implicit_reward_accuracy(str(tiny_causal_lm), str(tiny_causal_lm), PAIRS, CPU)
    assert figures["implicit_reward_pairs"] == len(PAIRS)
    assert figures["implicit_reward_accuracy"] == 0.0  # every margin is 0: none above it
    assert figures["implicit_reward_margin"] == 0.0
    assert figures["implicit_reward_accuracy_ci"] == [0.0, 0.0]


def test_margins_are_the_summed_log_ratios_of_the_answers(tmp_path, tiny_causal_lm):
    from tiny_models import build_causal_lm
    from transformers import AutoModelForCausalLM

    tuned = build_causal_lm(tmp_path / "other", seed=1)
    figures = implicit_reward_accuracy(str(tuned), str(tiny_causal_lm), PAIRS, CPU, batch_size=3)

    tokenizer = load_tokenizer(str(tiny_causal_lm), padding_side="left")
    policy, reference = (AutoModelForCausalLM.from_pretrained(str(path)) for path in (tuned, tiny_causal_lm))

    def log_ratio(pair: CanonicalPair, answer: str) -> float:
        return (answer_log_prob(policy, tokenizer, pair.prompt.text, answer)
                - answer_log_prob(reference, tokenizer, pair.prompt.text, answer))

    margins = [log_ratio(pair, pair.chosen) - log_ratio(pair, pair.rejected) for pair in PAIRS]
    assert figures["implicit_reward_margin"] == pytest.approx(sum(margins) / len(margins), abs=1e-4)
    assert figures["implicit_reward_accuracy"] == sum(margin > 0 for margin in margins) / len(margins)
    low, high = figures["implicit_reward_accuracy_ci"]
    assert low <= figures["implicit_reward_accuracy"] <= high
    low, high = figures["implicit_reward_margin_ci"]
    assert low <= figures["implicit_reward_margin"] <= high


def test_no_pairs_give_no_figures(tiny_causal_lm):
    figures = implicit_reward_accuracy(str(tiny_causal_lm), str(tiny_causal_lm), [], CPU)
    assert figures["implicit_reward_pairs"] == 0
    assert math.isnan(figures["implicit_reward_accuracy"]) and math.isnan(figures["implicit_reward_margin"])
