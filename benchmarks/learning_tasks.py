"""The real-model learning benchmark's data: generated arithmetic problems in GSM8K's layout, and a
fixed split of the Anthropic HH harmless pairs. Pure functions over rows; no model is needed."""

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from embedded_default.arithmetic.generate import GeneratorConfig, generate_rows
from embedded_default.arithmetic.generate import EVAL_FILE_NAME, PROMPT_FILE_NAME

# GSM8K notebooks' system prompt; the pipeline's `system_prompt` puts it before every problem.
MATH_SYSTEM_PROMPT = ("You are a helpful assistant that solves problems step-by-step. "
                      "Always include the final numeric answer inside \\boxed{}.")
HH_FILE = "hh-rlhf-harmless-base-test.jsonl.gz"
HH_HELD_OUT = 300


def arithmetic_problems(train: int, held_out: int, seed: int) -> tuple[list[dict], list[dict]]:
    """`train` and `held_out` word problems (answers 0..20, one +, - or x; the arithmetic sample task's
    generator), no question in both, as GSM8K rows: {"question", "answer": "#### N"}."""
    if train < 1 or held_out < 1:
        raise ValueError(f"need at least one training and one held-out problem, got {train} and {held_out}")
    rows = generate_rows(GeneratorConfig(seed=seed, preference_rows=0, prompt_rows=train, eval_rows=held_out))

    def gsm8k(row: dict) -> dict:
        question = next(m["content"] for m in row["prompt"] if m["role"] == "user")
        return {"question": question, "answer": f"#### {row['ground_truth']}"}

    return [gsm8k(r) for r in rows[PROMPT_FILE_NAME]], [gsm8k(r) for r in rows[EVAL_FILE_NAME]]


@dataclass(frozen=True)
class PairSplit:
    train: list[dict]
    held_out: list[dict]
    rule: str  # how the split was made, for the benchmark's output


def hh_split(rows: list[dict], train_pairs: int, max_chars: int, held_out: int = HH_HELD_OUT) -> PairSplit:
    """A fixed split of HH pairs: the pairs whose chosen and rejected transcripts are both at most
    `max_chars` characters long and whose answers differ, in file order; the LAST `held_out` of them
    are held out, the first `train_pairs` of the rest train."""
    short = [row for row in rows if row["chosen"] != row["rejected"]
             and max(len(row["chosen"]), len(row["rejected"])) <= max_chars]
    if len(short) < held_out + train_pairs:
        raise ValueError(f"only {len(short)} pairs have transcripts of at most {max_chars} characters; "
                         f"{held_out} held out + {train_pairs} training pairs need more (raise max_chars)")
    rule = (f"{len(short)} of {len(rows)} pairs have chosen and rejected transcripts of at most {max_chars} "
            f"characters; the last {held_out} of them (file order) are held out, the first {train_pairs} train")
    return PairSplit(short[:train_pairs], short[-held_out:], rule)


def read_jsonl_gz(path: Path) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"{path}: not found; give --data-dir, the folder of the shared benchmark data")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path
