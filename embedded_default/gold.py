"""The known preference of the sample task: a score in [0, 1] for a summary of a post.

The score is a product of three factors, each computed from the texts alone:

- key fact: the post's key noun (the one lexicon noun it is about) appears in the summary -> 1;
  no key noun at all -> 0.4; only a wrong key noun -> 0.1; the right one and a wrong one -> 0.5.
  When the prompt mentions no key noun (a prompt from another task), this factor is 1.
- brevity: the instruction's "less than N words" (N = 12 when the prompt states no limit) -> 1 up
  to N - 1 words, then falling linearly to 0 at 2N - 1 words; a summary shorter than 3 words is
  scaled down too (one word scores 1/3).
- fluency: share of distinct words among the words, divided by 0.75 and capped at 1, so only
  repetitive text ("my cat my cat my cat") loses.

An empty summary scores 0. pyproject.toml registers it as the gold scorer `sample-summaries`.
"""

import re

from embedded_default.lexicon import key_nouns_in, words

DEFAULT_WORD_LIMIT = 12
MIN_WORDS = 3
MIN_DISTINCT_SHARE = 0.75

FACT_KEPT = 1.0
FACT_KEPT_WITH_WRONG = 0.5
FACT_DROPPED = 0.4
FACT_WRONG = 0.1

_LIMIT_PATTERN = re.compile(r"(?:less|fewer) than (\d+) words|under (\d+) words", re.IGNORECASE)


def word_limit(prompt: str) -> int:
    """N of the first "less than N words" (or "fewer than", "under") in the prompt; else 12."""
    match = _LIMIT_PATTERN.search(prompt)
    if match is None:
        return DEFAULT_WORD_LIMIT
    return int(match.group(1) or match.group(2))


def post_key_noun(prompt: str) -> str | None:
    """The key noun the post is about: the lexicon noun it mentions most (first one on ties)."""
    mentions = key_nouns_in(prompt)
    if not mentions:
        return None
    return max(dict.fromkeys(mentions), key=mentions.count)


def fact_factor(prompt: str, response: str) -> float:
    key = post_key_noun(prompt)
    if key is None:
        return FACT_KEPT
    mentioned = set(key_nouns_in(response))
    if key in mentioned:
        return FACT_KEPT if mentioned == {key} else FACT_KEPT_WITH_WRONG
    return FACT_WRONG if mentioned else FACT_DROPPED


def brevity_factor(word_count: int, limit: int) -> float:
    if word_count < MIN_WORDS:
        return word_count / MIN_WORDS
    allowed = limit - 1  # "less than N words"
    if word_count <= allowed:
        return 1.0
    return max(0.0, 1.0 - (word_count - allowed) / limit)


def fluency_factor(response_words: list[str]) -> float:
    distinct_share = len(set(response_words)) / len(response_words)
    return min(1.0, distinct_share / MIN_DISTINCT_SHARE)


def gold_score(prompt: str, response: str) -> float:
    """How good `response` is as a summary of the post in `prompt` (instruction included), in [0, 1]."""
    response_words = words(response)
    if not response_words:
        return 0.0
    return (
        fact_factor(prompt, response)
        * brevity_factor(len(response_words), word_limit(prompt))
        * fluency_factor(response_words)
    )


