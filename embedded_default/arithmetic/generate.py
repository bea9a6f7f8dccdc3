r"""Deterministic generator of the arithmetic sample task's data: word problems with answers 0..20.

    python -m embedded_default.arithmetic.generate [--output-dir DIR] [--seed N]

Each problem is one of a few templates for +, - and x ("Ana has 3 apples. She buys 4 more. How many
apples does she have now?"), with operands chosen so that the answer lies in 0..MAX_ANSWER. Files:

- prompts.jsonl and eval.jsonl: prompt rows `{"prompt": [system, user], "ground_truth": "7"}`, the
  system message asking for the final answer in \boxed{} (GSM8K notebooks' layout);
- preference.jsonl: `{"prompt": [system, user], "chosen": [assistant], "rejected": [assistant]}`, the
  chosen answer right and the rejected one a plausible mistake (an operand copied, the wrong operation,
  off by one or two), both in \boxed{}: what the reward-model stage trains on.

No question appears twice across the three files.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from embedded_default.generate import generator_main, write_task_files

SYSTEM_PROMPT = r"Solve the math word problem. Give the final answer in \boxed{}."
PREFERENCE_FILE_NAME = "preference.jsonl"
PROMPT_FILE_NAME = "prompts.jsonl"
EVAL_FILE_NAME = "eval.jsonl"
MAX_ANSWER = 20
MAX_FACTOR = 5  # x problems multiply two numbers in 2..MAX_FACTOR (answer at most MAX_ANSWER)

NAMES = (("Ana", "she"), ("Ben", "he"), ("Carla", "she"), ("David", "he"), ("Emma", "she"), ("Felix", "he"),
         ("Grace", "she"), ("Hugo", "he"), ("Ines", "she"), ("Jack", "he"), ("Lina", "she"), ("Omar", "he"))
ITEMS = ("apples", "pears", "cookies", "marbles", "pencils", "stickers", "books", "cards", "eggs", "shells",
         "stamps", "coins")
CONTAINERS = ("bags", "boxes", "baskets", "jars")
FRIENDS = ("a friend", "a cousin", "a classmate", "a neighbor", "the teacher")

# (operation, template); {a} and {b} are the operands, {name}/{pronoun}/{Pronoun} the person.
TEMPLATES: tuple[tuple[str, str], ...] = (
    ("+", "{name} has {a} {items}. {Pronoun} buys {b} more. How many {items} does {pronoun} have now?"),
    ("+", "{name} picks {a} {items} in the morning and {b} {items} in the afternoon. "
          "How many {items} does {name} pick in all?"),
    ("+", "There are {a} {items} on the table. {name} puts {b} more on it. How many {items} are on the table?"),
    ("-", "{name} has {a} {items} and gives {b} to {friend}. How many {items} does {name} have left?"),
    ("-", "There are {a} {items} in the basket. {name} takes {b} of them. How many {items} are still in the basket?"),
    ("-", "{name} had {a} {items}. {Pronoun} lost {b} of them. How many {items} does {pronoun} have now?"),
    ("x", "{name} has {a} {container} with {b} {items} in each. How many {items} does {name} have?"),
    ("x", "{name} buys {a} {container} of {items}. Each one holds {b} {items}. How many {items} does {name} buy?"),
)


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 0
    preference_rows: int = 1000
    prompt_rows: int = 1500
    eval_rows: int = 200


@dataclass(frozen=True)
class Problem:
    question: str
    operation: str  # "+", "-" or "x"
    a: int
    b: int

    @property
    def answer(self) -> int:
        return solve(self.operation, self.a, self.b)


def solve(operation: str, a: int, b: int) -> int:
    if operation == "+":
        return a + b
    if operation == "-":
        return a - b
    if operation == "x":
        return a * b
    raise ValueError(f"unknown operation {operation!r}")


def operands(rng: random.Random, operation: str) -> tuple[int, int]:
    """Two operands whose result is in 0..MAX_ANSWER."""
    if operation == "+":
        a = rng.randint(1, MAX_ANSWER - 1)
        return a, rng.randint(1, MAX_ANSWER - a)
    if operation == "-":
        a = rng.randint(1, MAX_ANSWER)
        return a, rng.randint(1, a)
    while True:
        a, b = rng.randint(2, MAX_FACTOR), rng.randint(2, MAX_FACTOR)
        if a * b <= MAX_ANSWER:
            return a, b


def make_problem(rng: random.Random) -> Problem:
    operation, template = rng.choice(TEMPLATES)
    a, b = operands(rng, operation)
    name, pronoun = rng.choice(NAMES)
    friend = rng.choice(FRIENDS)
    question = template.format(name=name, pronoun=pronoun, Pronoun=pronoun.capitalize(), a=a, b=b,
                               items=rng.choice(ITEMS), container=rng.choice(CONTAINERS), friend=friend)
    return Problem(question, operation, a, b)


def answer_text(answer: int) -> str:
    r"""The reply the model is warmed up to give: "The answer is \boxed{7}."."""
    return f"The answer is \\boxed{{{answer}}}."


def wrong_answer(rng: random.Random, problem: Problem) -> int:
    """A plausible mistake: an operand copied, the wrong operation, or off by one or two; never the answer."""
    right = problem.answer
    other_operation = {"+": "-", "-": "+", "x": "+"}[problem.operation]
    candidates = {problem.a, problem.b, abs(solve(other_operation, problem.a, problem.b)),
                  right - 2, right - 1, right + 1, right + 2}
    return rng.choice(sorted(value for value in candidates if value != right and value >= 0))


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]


def prompt_row(problem: Problem) -> dict:
    return {"prompt": messages(problem.question), "ground_truth": str(problem.answer)}


def preference_row(rng: random.Random, problem: Problem) -> dict:
    return {
        "prompt": messages(problem.question),
        "chosen": [{"role": "assistant", "content": answer_text(problem.answer)}],
        "rejected": [{"role": "assistant", "content": answer_text(wrong_answer(rng, problem))}],
    }


def _unique_problems(rng: random.Random, count: int, seen: set[str]) -> list[Problem]:
    problems = []
    while len(problems) < count:
        problem = make_problem(rng)
        if problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    return problems


def generate_rows(config: GeneratorConfig) -> dict[str, list[dict]]:
    """The rows of the three files, keyed by file name."""
    rng = random.Random(config.seed)
    seen: set[str] = set()
    eval_problems = _unique_problems(rng, config.eval_rows, seen)
    prompt_problems = _unique_problems(rng, config.prompt_rows, seen)
    preference_problems = _unique_problems(rng, config.preference_rows, seen)
    return {
        PREFERENCE_FILE_NAME: [preference_row(rng, problem) for problem in preference_problems],
        PROMPT_FILE_NAME: [prompt_row(problem) for problem in prompt_problems],
        EVAL_FILE_NAME: [prompt_row(problem) for problem in eval_problems],
    }


def generate(output_dir: str | Path, config: GeneratorConfig = GeneratorConfig()) -> dict[str, Path]:
    """Write the three JSONL files into `output_dir`; returns their paths keyed by file name."""
    return write_task_files(output_dir, generate_rows(config))


def main(argv: list[str] | None = None) -> None:
    from embedded_default.arithmetic import DATA_DIR

    generator_main(argv, __doc__.splitlines()[0], DATA_DIR, GeneratorConfig, generate)


if __name__ == "__main__":
    main()
