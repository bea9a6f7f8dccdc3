"""Prompts rendered through each model's chat template, the same way in every stage."""

import shutil
from pathlib import Path

import pytest

from components.common.chat_templates import PromptFormatter, rendering_note, system_prompt_note, uses_chat_template
from components.common.data.transcripts import Message, Prompt
from components.common.data.lengths import LengthTokenizer
from components.common.errors import UserInputError
from components.common.models import load_tokenizer

# A template over the test tokenizer's own words (tests/tiny_models.WORDS), so rendered prompts
# tokenize without unknown tokens: "i" opens a user turn, "it" an assistant turn, "yes" a system one.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}i {% elif m['role'] == 'assistant' %}it {% else %}yes {% endif %}"
    "{{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}[summary]:\n{% endif %}"
)
BOS_TEMPLATE = "{{ bos_token }}" + CHAT_TEMPLATE

CONVERSATION = Prompt(
    "\n\nHuman: my cat\n\nAssistant: a cat\n\nHuman: the dog\n\nAssistant:",
    (Message("user", "my cat"), Message("assistant", "a cat"), Message("user", "the dog")),
)


def with_template(source: Path, directory: Path, template: str) -> Path:
    """A copy of the model at `source` whose tokenizer carries `template`."""
    shutil.copytree(source, directory)
    tokenizer = load_tokenizer(str(directory), padding_side="left")
    tokenizer.chat_template = template
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory, tiny_causal_lm) -> Path:
    return with_template(tiny_causal_lm, tmp_path_factory.mktemp("chat") / "model", CHAT_TEMPLATE)


def test_a_canonical_row_keeps_its_conversation():
    row = {"prompt": CONVERSATION.text, "prompt_messages": [m.to_json() for m in CONVERSATION.messages]}
    assert Prompt.from_row(row) == CONVERSATION
    assert Prompt.from_row({"prompt": "a post"}) == Prompt("a post")
    assert Prompt("a post").conversation() == [{"role": "user", "content": "a post"}]


def test_the_setting_decides_per_tokenizer(tiny_causal_lm, chat_model):
    plain = load_tokenizer(str(tiny_causal_lm), "left")
    chat = load_tokenizer(str(chat_model), "left")
    assert uses_chat_template("auto", chat, "chat") and not uses_chat_template("auto", plain, "plain")
    assert not uses_chat_template("false", chat, "chat")
    assert uses_chat_template("true", chat, "chat")
    with pytest.raises(UserInputError, match="the tokenizer of plain has no chat template"):
        uses_chat_template("true", plain, "plain")
    with pytest.raises(UserInputError, match="use_chat_template must be one of auto, true, false, got 'yes'"):
        uses_chat_template("yes", chat, "chat")


def test_conversations_render_through_the_template_and_plain_models_keep_the_transcript(tiny_causal_lm, chat_model):
    chat = PromptFormatter(load_tokenizer(str(chat_model), "left"), "auto", "chat")
    assert chat.prompt(CONVERSATION) == "i my cat it a cat i the dog [summary]:\n"
    assert chat.prompt(Prompt("a post")) == "i a post [summary]:\n"  # plain text: one user turn
    assert chat.answer(" the cat sat") == "the cat sat"

    plain = PromptFormatter(load_tokenizer(str(tiny_causal_lm), "left"), "auto", "plain")
    assert plain.prompt(CONVERSATION) == CONVERSATION.text
    assert plain.answer(" the cat sat") == " the cat sat"


def test_a_system_prompt_goes_before_prompts_without_one_with_or_without_a_template(tiny_causal_lm, chat_model):
    chat = PromptFormatter(load_tokenizer(str(chat_model), "left"), "auto", "chat")
    plain = PromptFormatter(load_tokenizer(str(tiny_causal_lm), "left"), "auto", "plain")
    text = Prompt("a post").with_system_prompt(" the cat ")  # surrounding blanks are not the message's
    assert text.conversation() == [{"role": "system", "content": "the cat"}, {"role": "user", "content": "a post"}]
    assert chat.prompt(text) == "yes the cat i a post [summary]:\n"
    assert plain.prompt(text) == "the cat\n\na post"  # no template: the system text is the first paragraph

    conversation = CONVERSATION.with_system_prompt("the cat")
    assert chat.prompt(conversation) == "yes the cat i my cat it a cat i the dog [summary]:\n"
    assert plain.prompt(conversation) == "the cat" + CONVERSATION.text  # as chat_prompt writes a system message

    own = Prompt("yes\n\nHuman: hi\n\nAssistant:", (Message("system", "yes"), Message("user", "hi")))
    assert own.with_system_prompt("the cat") == own  # a prompt's own system message wins
    assert Prompt("a post").with_system_prompt("") == Prompt("a post")
    assert Prompt("a post").with_system_prompt("   ") == Prompt("a post")


def test_the_data_report_shows_the_system_prompt_and_who_kept_their_own():
    rows = [Prompt("a").with_system_prompt("Be brief."), Prompt("b", (Message("system", "Own."), Message("user", "b"))),
            Prompt("c").with_system_prompt("Be brief.")]

    class Row:
        def __init__(self, prompt):
            self.prompt = prompt

        def to_json(self):
            return {"prompt": self.prompt.text, "prompt_messages": [m.to_json() for m in self.prompt.messages]}

    note = system_prompt_note("Be brief.", [Row(r) for r in rows])
    assert note.startswith("System prompt: 'Be brief.' (system_prompt) is the system message of 2 of 3 prompts; "
                           "1 came with one of their own")
    assert system_prompt_note("", []).startswith("System prompt: none")


def test_a_template_that_writes_the_bos_does_not_double_it(tmp_path, tiny_causal_lm):
    from transformers import AutoTokenizer

    directory = with_template(tiny_causal_lm, tmp_path / "bos", BOS_TEMPLATE)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer._tokenizer.post_processor = _bos_adding_post_processor(tokenizer)
    formatter = PromptFormatter(tokenizer, "auto", "bos")
    ids = tokenizer(formatter.prompt(CONVERSATION))["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id

    tokenizer._tokenizer.post_processor = None  # a tokenizer that adds nothing keeps the template's BOS
    ids = tokenizer(PromptFormatter(tokenizer, "auto", "bos").prompt(CONVERSATION))["input_ids"]
    assert ids[0] == tokenizer.bos_token_id


def _bos_adding_post_processor(tokenizer):
    from tokenizers import processors

    return processors.TemplateProcessing(
        single=f"{tokenizer.bos_token} $A", special_tokens=[(tokenizer.bos_token, tokenizer.bos_token_id)]
    )


def test_the_data_report_says_whether_the_template_is_used(tiny_causal_lm, chat_model):
    class Example:
        def __init__(self, messages: bool):
            self.row = {"prompt": "p", **({"prompt_messages": []} if messages else {})}

        def to_json(self):
            return self.row

    examples = [Example(True), Example(False), Example(True)]
    chat = LengthTokenizer(load_tokenizer(str(chat_model), "left"), "chat-model")
    plain = LengthTokenizer(load_tokenizer(str(tiny_causal_lm), "left"), "plain-model")
    assert rendering_note("auto", chat, examples).startswith("Chat template: used (use_chat_template=auto)")
    assert "2 of 3 prompts came as conversations" in rendering_note("auto", chat, examples)
    assert "not used (use_chat_template=auto; the tokenizer has none)" in rendering_note("auto", plain, examples)
    assert "not used (use_chat_template=false; it is turned off)" in rendering_note("false", chat, examples)
    assert "decided when the model loads" in rendering_note("true", LengthTokenizer(None, "x"), examples)
    with pytest.raises(UserInputError, match="the tokenizer of plain-model has no chat template"):
        rendering_note("true", plain, examples)


def test_ppo_rollouts_render_prompts_with_the_policys_template_and_score_the_prompts_themselves(chat_model):
    import torch

    from components.common.models import Placement
    from components.tune_policy.config import PolicyTuningConfig
    from components.tune_policy.policy_model import load_policy
    from components.tune_policy.rollout import collect_rollout

    config = PolicyTuningConfig(steps=1, lora_rank=0, kl_coeff=0.0, max_new_tokens=3, max_prompt_tokens=32)
    policy = load_policy(str(chat_model), config, Placement(torch.device("cpu"), torch.float32))
    formatter = PromptFormatter(load_tokenizer(str(chat_model), "left"), "auto", "chat")
    scored = []

    def score(prompts, responses):
        scored.extend(prompts)
        return torch.zeros(len(responses))

    prompts = [CONVERSATION, Prompt("a post")]
    rollout = collect_rollout(policy, None, score, formatter, prompts, config)
    expected = formatter.tokenizer(
        ["i my cat it a cat i the dog [summary]:\n", "i a post [summary]:\n"], return_tensors="pt", padding=True
    )["input_ids"]
    assert torch.equal(rollout.input_ids[:, : expected.shape[1]], expected)
    assert scored == prompts  # the reward model renders the prompts its own way


def test_the_reward_model_reads_pairs_through_its_own_template_in_training_and_scoring(chat_model, tiny_causal_lm):
    from components.common.reward_scoring import reward_model_text
    from components.train_reward_model.training import tokenized_pairs

    row = {
        "prompt": CONVERSATION.text,
        "prompt_messages": [m.to_json() for m in CONVERSATION.messages],
        "chosen": " the cat sat",
        "rejected": " bad",
    }
    chat = PromptFormatter(load_tokenizer(str(chat_model), "right"), "auto", "chat")
    assert reward_model_text(CONVERSATION, " the cat sat", chat) == "i my cat it a cat i the dog [summary]:\nthe cat sat</s>"
    [trained] = tokenized_pairs([row], chat, with_margin=False)
    assert trained["chosen_ids"] == chat.tokenizer("i my cat it a cat i the dog [summary]:\nthe cat sat</s>")["input_ids"]

    plain = PromptFormatter(load_tokenizer(str(tiny_causal_lm), "right"), "auto", "plain")
    assert reward_model_text(CONVERSATION, " the cat sat", plain) == CONVERSATION.text + " the cat sat</s>"


def test_the_evaluation_samples_each_policy_on_its_rendered_prompts(chat_model):
    import torch

    from components.common.models import Placement
    from components.evaluate.config import EvaluationConfig
    from components.common.models import load_causal_lm
    from components.evaluate.policy_samples import sample_policy

    model, formatter = load_causal_lm(str(chat_model), Placement(torch.device("cpu"), torch.float32), "auto")
    samples = sample_policy(model, formatter, [CONVERSATION], EvaluationConfig(max_new_tokens=2), "tuned")
    [batch] = samples.batches
    expected = formatter.tokenizer("i my cat it a cat i the dog [summary]:\n", return_tensors="pt")["input_ids"]
    assert torch.equal(batch.prompt_ids, expected)
    _, plain = load_causal_lm(str(chat_model), Placement(torch.device("cpu"), torch.float32), "false")
    assert plain.prompt(CONVERSATION) == CONVERSATION.text


def test_predictions_and_report_show_each_prompt_as_the_model_read_it(tmp_path, chat_model):
    """inputs_pretokenized keeps Vertex's meaning, the text the model tokenized: the template's rendering."""
    import json

    import torch

    from components.common.models import Placement
    from components.evaluate.config import EvaluationConfig
    from components.evaluate.evaluation import EvaluationOutputs, run_evaluation

    prompts = tmp_path / "eval.jsonl"
    prompts.write_text(json.dumps({"prompt": CONVERSATION.text,
                                   "prompt_messages": [m.to_json() for m in CONVERSATION.messages]}) + "\n")
    out = tmp_path / "out"
    run_evaluation(EvaluationConfig(max_new_tokens=2, max_prompt_tokens=32), base_source=str(chat_model),
                   tuned_source=str(chat_model), reward_source=None, eval_pairs_path=None, eval_prompts_path=prompts,
                   reward_logs_dir=None, policy_logs_dir=None, placement=Placement(torch.device("cpu"), torch.float32),
                   outputs=EvaluationOutputs(out / "report.html", out / "report.md", out / "predictions",
                                             out / "evaluation.json"))
    rendered = "i my cat it a cat i the dog [summary]:\n"
    for name in ("base_predictions.jsonl", "tuned_predictions.jsonl"):
        [row] = [json.loads(line) for line in (out / "predictions" / name).read_text().splitlines()]
        assert row["inputs"]["inputs_pretokenized"] == rendered
    markdown = (out / "report.md").read_text()
    assert "| Prompt (as the policy read it) |" in markdown
    assert "i my cat it a cat i the dog \\[summary\\]:" in markdown and "Human:" not in markdown
