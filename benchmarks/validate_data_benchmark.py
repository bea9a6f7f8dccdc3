"""Benchmark of `validate-data`: 100,000 Vertex-format preference pairs of about 1 KB each.

    python benchmarks/validate_data_benchmark.py [--rows 100000] [--tokenizer DIR_OR_ID]

Writes the rows into a temporary directory, then runs the command as a user would, in a separate
process with `--write-normalized`, twice: as is (every check but token lengths), then with
`--tokenizer` (token-length checks too; by default a byte-level BPE tokenizer of 4,000 tokens
trained on the rows first, untimed). Prints wall time, peak resident memory and the machine's load
for each. Exits non-zero when a run fails or the first misses the targets (30 s, 1 GiB).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_VOCAB_SIZE = 4000
TOKENIZER_TRAINING_ROWS = 2000
TARGET_SECONDS = 30.0
TARGET_PEAK_BYTES = 1024**3
WORDS = ("the cat dog house tree river mountain city people time year day week month work school water food "
         "money story game music friend family question answer reason problem idea summary post reddit").split()
PROMPT_WORDS, ANSWER_WORDS = 100, 30  # about 600 + 2 x 190 bytes a row


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_rows(path: Path, rows: int, seed: int = 0) -> int:
    """`rows` Vertex text preference rows; returns the file's size in bytes."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(rows):
            row = {"input_text": f"POST {index}: {_text(rng, PROMPT_WORDS)} [summary]: ",
                   "candidate_0": _text(rng, ANSWER_WORDS), "candidate_1": _text(rng, ANSWER_WORDS),
                   "choice": index % 2}
            handle.write(json.dumps(row) + "\n")
    return path.stat().st_size


def train_tokenizer(dataset: Path, directory: Path) -> Path:
    """A byte-level BPE tokenizer (GPT-2's kind) trained on the first rows: realistic token counts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    with open(dataset) as handle:
        texts = [json.loads(line)["input_text"] for line, _ in zip(handle, range(TOKENIZER_TRAINING_ROWS))]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BENCH_VOCAB_SIZE, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>").save_pretrained(directory)
    return directory


def timed_run(dataset: Path, output: Path, extra: list[str]) -> tuple[int, float, int, str]:
    """(exit code, seconds, peak resident bytes, output) of one `validate-data` process."""
    command = [sys.executable, "-m", "cli.commands.validate_data", "--preference-dataset", str(dataset),
               "--write-normalized", str(output), *extra]
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        text = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return process.returncode, seconds, usage.ru_maxrss * 1024, text  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tokenizer", help="tokenizer of the second run (default: one trained on the rows)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="validate-data-bench-") as workdir:
        work = Path(workdir)
        dataset = work / "preferences.jsonl"
        size = write_rows(dataset, args.rows)
        print(f"dataset: {args.rows} rows, {size / 1e6:.1f} MB ({size / args.rows:.0f} bytes a row); "
              f"{os.cpu_count()} CPUs")
        tokenizer = args.tokenizer or str(train_tokenizer(dataset, work / "tokenizer"))
        runs = (("validate + normalize", []), ("validate + normalize + token lengths", ["--tokenizer", tokenizer]))
        first_ok = False
        for index, (name, extra) in enumerate(runs):
            code, seconds, peak, text = timed_run(dataset, work / f"normalized-{index}", extra)
            written = sum(1 for _ in open(work / f"normalized-{index}" / "preference_data" / "train.jsonl")) \
                if code == 0 else 0
            print(f"\n== {name}\n{text.strip()}")
            print(f"time: {seconds:.1f} s; peak memory: {peak / 2**20:.0f} MiB; {written} training pairs written; "
                  f"exit code {code}; load average {os.getloadavg()[0]:.1f}")
            if index == 0:
                first_ok = code == 0 and seconds <= TARGET_SECONDS and peak <= TARGET_PEAK_BYTES
    print(f"\ntargets ({TARGET_SECONDS:.0f} s, {TARGET_PEAK_BYTES / 2**30:.0f} GiB) "
          f"{'met' if first_ok else 'MISSED'} by the first run")
    return 0 if first_ok else 1


if __name__ == "__main__":
    sys.exit(main())
