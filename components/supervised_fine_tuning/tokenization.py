"""Supervised examples as token ids: the prompt as the policy reads it in every later stage, then
the completion and EOS, the tokens the loss covers.

The ids are those of components/common/sequences.py, which preference tuning and the implicit-reward
evaluation use too: the prompt is rendered by the model's PromptFormatter (its chat template or plain
text, as `use_chat_template` decides), the same way PPO, GRPO and the evaluation render it, and
encoded alone exactly as generation encodes it; a prompt over `max_prompt_tokens` keeps its end (and
the special tokens the tokenizer adds, as generation's). The completion, rendered as the formatter
renders answers, is encoded alone and followed by EOS, at most `max_completion_tokens` tokens in all;
a longer one is cut and gets no EOS, so that the model is not taught to stop where a text was cut.

Prompt and completion are not tokenized as one text: under a BPE tokenizer a prompt's trailing space
and the completion's first word would merge into one token, and the model would learn token
sequences generation never produces after that prompt.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from components.common.chat_templates import PromptFormatter
from components.common.data.transcripts import Prompt
from components.common.sequences import answer_ids, prompt_ids, prompt_lengths


@dataclass(frozen=True)
class SupervisedIds:
    input_ids: list[int]
    completion_mask: list[int]  # 1 on the completion's tokens (EOS included), 0 on the prompt's
    prompt_truncated: bool  # the prompt kept only its last max_prompt_tokens tokens
    completion_truncated: bool  # the completion was cut to max_completion_tokens, without EOS

    def to_trl(self) -> dict[str, list[int]]:
        """The row TRL's SFTTrainer trains on as it is (already tokenized; loss where the mask is 1)."""
        return {"input_ids": self.input_ids, "completion_mask": self.completion_mask}


def supervised_ids(
    prompts: Sequence[Prompt],
    completions: Sequence[str],
    formatter: PromptFormatter,
    max_prompt_tokens: int,
    max_completion_tokens: int,
) -> list[SupervisedIds]:
    """The token ids of each (prompt, completion) example and which of them the loss covers (see the
    module's docstring)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    contexts = prompt_ids(formatter, prompts, max_prompt_tokens)
    lengths = prompt_lengths(formatter, prompts)
    # One token over the budget: a target that comes back that long did not fit with its EOS, and its
    # first max_completion_tokens tokens are the completion as answer_ids cuts it.
    targets = answer_ids(formatter, completions, max_completion_tokens + 1)
    examples = []
    for context, length, target in zip(contexts, lengths, targets, strict=True):
        cut = len(target) > max_completion_tokens
        target = target[:max_completion_tokens]
        examples.append(
            SupervisedIds(
                input_ids=context + target,
                completion_mask=[0] * len(context) + [1] * len(target),
                prompt_truncated=length > max_prompt_tokens,
                completion_truncated=cut,
            )
        )
    return examples
