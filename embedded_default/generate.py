"""Deterministic generator of the sample task's data, in Vertex AI's RLHF text formats.

    python -m embedded_default.generate [--output-dir DIR] [--seed N]

Each row is a short Reddit-style post about one key noun of the lexicon (a cat, a landlord, a
laptop...), ending with " [summary]: " like Vertex's TL;DR sample. Preference rows pair two summaries
of different gold score (embedded_default.gold) with `choice` pointing at the better one. A summary
is one of these kinds:

- good: keeps the key noun and stays under the word limit;
- long: keeps the key noun but rambles past the limit (or copies the post);
- vague: short but drops the key noun;
- wrong: short, but tells another post's story (another key noun, with a problem of its kind; a
  quarter of the time a noun of the post's own kind, a dog for a cat): the reward model must
  read the post to tell it from a good one;
- wrong_long / vague_long: both faults at once.

Writes preference.jsonl, prompts.jsonl and eval.jsonl; no post appears twice across the three files.
"""

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

from embedded_default import lexicon
from embedded_default.gold import DEFAULT_WORD_LIMIT, gold_score
from embedded_default.lexicon import CATEGORY_OF, KEY_NOUNS

SUMMARY_CUE = " [summary]: "
PREFERENCE_FILE_NAME = "preference.jsonl"
PROMPT_FILE_NAME = "prompts.jsonl"
EVAL_FILE_NAME = "eval.jsonl"

# (better kind, worse kind, share of the preference rows)
PAIR_KINDS: tuple[tuple[str, str, float], ...] = (
    ("good", "wrong", 0.45),
    ("vague", "wrong", 0.05),
    ("good", "vague", 0.20),
    ("good", "long", 0.15),
    ("long", "wrong_long", 0.05),
    ("good", "vague_long", 0.05),
    ("vague", "vague_long", 0.05),
)
SAME_CATEGORY_WRONG_SHARE = 0.25  # a wrong key noun is of the post's own kind this often, else of any kind
COPIED_POST_SHARE = 0.25  # long summaries that are the post itself
MIN_GOLD_GAP = 0.15  # the two candidates of a pair differ at least this much in gold score
MAX_PAIR_TRIES = 1000
MAX_GOOD_WORDS = DEFAULT_WORD_LIMIT - 1  # "less than N words"
LONG_WORDS = (DEFAULT_WORD_LIMIT + 3, 2 * DEFAULT_WORD_LIMIT - 2)  # a rambling summary's length range


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 0
    preference_rows: int = 3000
    prompt_rows: int = 2000
    eval_rows: int = 200


@dataclass(frozen=True)
class Post:
    """One generated post and the facts its summaries are built from."""

    input_text: str
    noun: str
    problem: str
    body: str
    attempt: str
    feeling: str
    duration: str


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def make_post(rng: random.Random) -> Post:
    noun = rng.choice(KEY_NOUNS)
    category = CATEGORY_OF[noun]
    problem = rng.choice(category.problems)
    attempt = rng.choice(category.attempts)
    feeling = rng.choice(lexicon.FEELINGS)
    duration = rng.choice(lexicon.DURATIONS)
    context = rng.choice(category.contexts).format(
        noun=noun, duration=duration, time_ago=rng.choice(lexicon.TIMES_AGO)
    )
    opener = rng.choice(("Lately my", "Now my", "The problem is that my", "This week my"))
    sentences = [context, f"{opener} {noun} {problem}."]
    if rng.random() < 0.7:
        sentences.append(f"I tried {attempt} but nothing changed.")
    if rng.random() < 0.6:
        sentences.append(rng.choice((f"I feel {feeling}.", f"I am so {feeling}.", f"Honestly I am {feeling}.")))
    sentences.append(rng.choice(lexicon.ASKS))
    body = " ".join(sentences)
    title = rng.choice(
        (f"My {noun} {problem}", f"Need advice about my {noun}", f"Problem with my {noun}", f"Help, my {noun} {problem}")
    )
    input_text = f"SUBREDDIT: r/{category.subreddit}\nTITLE: {title}\nPOST: {body}{SUMMARY_CUE}"
    return Post(input_text, noun, problem, body, attempt, feeling, duration)


def _short_summary(rng: random.Random, post: Post, noun: str, problem: str | None = None) -> str:
    """A summary of at most MAX_GOOD_WORDS words naming `noun` and `problem` (default: the post's)."""
    problem = problem or post.problem
    options = [
        f"My {noun} {problem}, {rng.choice(lexicon.ASKS).lower()}",
        f"My {noun} {problem} and I feel {post.feeling}.",
        f"{_capitalize(noun)} {problem}, need advice.",
        f"My {noun} {problem}.",
    ]
    fitting = [text for text in options if len(lexicon.words(text)) <= MAX_GOOD_WORDS]
    return rng.choice(fitting)


def _ramble(rng: random.Random, post: Post, first_clause: str) -> str:
    """`first_clause` followed by rambling tails, about LONG_WORDS long (never shorter than its minimum)."""
    tails = [tail.format(attempt=post.attempt, duration=post.duration, feeling=post.feeling) for tail in lexicon.RAMBLES]
    rng.shuffle(tails)
    text = first_clause
    target = rng.randint(*LONG_WORDS)
    for tail in tails:
        longer = f"{text} {tail}"
        if len(lexicon.words(longer)) <= LONG_WORDS[1] or len(lexicon.words(text)) < LONG_WORDS[0]:
            text = longer
        if len(lexicon.words(text)) >= target:
            break
    return text + "."


def _wrong_topic(rng: random.Random, post: Post) -> tuple[str, str]:
    """Another key noun (of the post's own kind SAME_CATEGORY_WRONG_SHARE of the time) and a problem of its kind."""
    pool = CATEGORY_OF[post.noun].nouns if rng.random() < SAME_CATEGORY_WRONG_SHARE else KEY_NOUNS
    noun = rng.choice([other for other in pool if other != post.noun])
    return noun, rng.choice(CATEGORY_OF[noun].problems)


def make_summary(rng: random.Random, post: Post, kind: str) -> str:
    if kind == "good":
        return _short_summary(rng, post, post.noun)
    if kind == "wrong":
        return _short_summary(rng, post, *_wrong_topic(rng, post))
    if kind == "vague":
        return rng.choice(lexicon.VAGUE_SUMMARIES).format(problem=post.problem, feeling=post.feeling)
    if kind == "long":
        if rng.random() < COPIED_POST_SHARE:  # copies the post instead of summarising it
            return post.body
        return _ramble(rng, post, f"My {post.noun} {post.problem}")
    if kind == "wrong_long":
        noun, problem = _wrong_topic(rng, post)
        return _ramble(rng, post, f"My {noun} {problem}")
    if kind == "vague_long":
        return _ramble(rng, post, rng.choice(("I have a problem", "Someone " + post.problem, "Things are bad")))
    raise ValueError(f"unknown summary kind {kind!r}")


def make_preference_row(rng: random.Random, post: Post, better_kind: str, worse_kind: str) -> dict:
    for _ in range(MAX_PAIR_TRIES):
        better = make_summary(rng, post, better_kind)
        worse = make_summary(rng, post, worse_kind)
        if gold_score(post.input_text, better) - gold_score(post.input_text, worse) >= MIN_GOLD_GAP:
            break
    else:
        raise RuntimeError(f"no {better_kind} / {worse_kind} pair {MIN_GOLD_GAP} apart for {post.input_text!r}")
    choice = rng.randrange(2)
    candidates = (better, worse) if choice == 0 else (worse, better)
    return {"input_text": post.input_text, "candidate_0": candidates[0], "candidate_1": candidates[1], "choice": choice}


def _unique_posts(rng: random.Random, count: int, seen: set[str]) -> list[Post]:
    posts = []
    while len(posts) < count:
        post = make_post(rng)
        if post.input_text not in seen:
            seen.add(post.input_text)
            posts.append(post)
    return posts


def generate_rows(config: GeneratorConfig) -> dict[str, list[dict]]:
    """The rows of the three files, keyed by file name."""
    lexicon.check_lexicon()
    rng = random.Random(config.seed)
    seen: set[str] = set()
    eval_posts = _unique_posts(rng, config.eval_rows, seen)
    prompt_posts = _unique_posts(rng, config.prompt_rows, seen)
    preference_posts = _unique_posts(rng, config.preference_rows, seen)
    kinds = [(better, worse) for better, worse, _ in PAIR_KINDS]
    weights = [share for _, _, share in PAIR_KINDS]
    preference_rows = []
    for post in preference_posts:
        better_kind, worse_kind = rng.choices(kinds, weights)[0]
        preference_rows.append(make_preference_row(rng, post, better_kind, worse_kind))
    return {
        PREFERENCE_FILE_NAME: preference_rows,
        PROMPT_FILE_NAME: [{"input_text": post.input_text} for post in prompt_posts],
        EVAL_FILE_NAME: [{"input_text": post.input_text} for post in eval_posts],
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_task_files(output_dir: str | Path, rows_by_name: dict[str, list[dict]]) -> dict[str, Path]:
    """Write each file's rows as JSONL into `output_dir`; returns their paths keyed by file name."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in rows_by_name.items():
        paths[name] = directory / name
        write_jsonl(paths[name], rows)
    return paths


def generate(output_dir: str | Path, config: GeneratorConfig = GeneratorConfig()) -> dict[str, Path]:
    """Write the three JSONL files into `output_dir`; returns their paths keyed by file name."""
    return write_task_files(output_dir, generate_rows(config))


def generator_main(argv: list[str] | None, description: str, data_dir: Path, config_class, generate_files) -> None:
    """The command line of a sample task's generator: sizes and seed of its three files, and where they go."""
    defaults = config_class()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output-dir", type=Path, default=data_dir, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--preference-rows", type=int, default=defaults.preference_rows)
    parser.add_argument("--prompt-rows", type=int, default=defaults.prompt_rows)
    parser.add_argument("--eval-rows", type=int, default=defaults.eval_rows)
    args = parser.parse_args(argv)
    config = config_class(args.seed, args.preference_rows, args.prompt_rows, args.eval_rows)
    for path in generate_files(args.output_dir, config).values():
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    from embedded_default import DATA_DIR

    generator_main(argv, __doc__.splitlines()[0], DATA_DIR, GeneratorConfig, generate)


if __name__ == "__main__":
    main()
