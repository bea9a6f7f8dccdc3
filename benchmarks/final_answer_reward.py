r"""The verifiable reward of the real-model learning benchmark, in TRL GRPOTrainer's signature.

    reward_function: benchmarks/final_answer_reward.py:final_answer_reward

A small instruct model asked for `\boxed{}` rarely writes it (SmolLM2-135M-Instruct: 0 of 48 greedy
answers to the benchmark's problems), so the rule that the GSM8K notebooks' lenient graders use is
taken instead: the answer is the last complete `\boxed{...}` of the completion when there is one,
else its last number; 1.0 when that equals the row's `ground_truth` (compared as numbers,
components/common/data/answers.py), else 0.0.
"""

import re

from components.common.data.answers import NUMBER, last_boxed, same_answer

_NUMBER = re.compile(NUMBER)


def final_answer(text: str) -> str | None:
    """The last `\\boxed{}` content of `text`, else its last number, else None."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def final_answer_reward(completions, ground_truth, **kwargs) -> list[float]:
    """1.0 for each completion whose final answer equals its ground truth, else 0.0 (TRL's signature:
    completions are strings, or [{"role": "assistant", "content": ...}] for chat prompts)."""
    rewards = []
    for completion, truth in zip(completions, ground_truth, strict=True):
        text = completion if isinstance(completion, str) else "".join(m["content"] for m in completion)
        answer = final_answer(text)
        rewards.append(float(answer is not None and same_answer(answer, str(truth))))
    return rewards
