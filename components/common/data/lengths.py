"""Token lengths: measured with the base model's tokenizer, over-long texts truncated or dropped.

A prompt over `prompt_sequence_length` tokens keeps its end (where the task cue is); an answer over
`target_sequence_length` keeps its beginning. Texts are cut at token boundaries of the original
string (offsets), never decoded, so nothing else about them changes.
"""

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from components.common.data import reasons
from components.common.data.records import PreferencePair, Reject, text_fault

TRUNCATE, DROP = "truncate", "drop"
LIMIT_SETTINGS = {"prompt": "prompt_sequence_length", "chosen": "target_sequence_length",
                  "rejected": "target_sequence_length"}
LENGTH_POLICIES = (TRUNCATE, DROP)
HUB_PROBE_TIMEOUT_S = 3.0
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"


@dataclass
class LengthTokenizer:
    """A tokenizer for length checks, or the note saying why there is none."""

    tokenizer: object | None
    source: str
    note: str = ""


def _hub_reachable() -> bool:
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", DEFAULT_HUB_ENDPOINT))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def load_length_tokenizer(source: str | None) -> LengthTokenizer:
    """The tokenizer of `source` (a local directory or a hub id); never raises.

    A hub id is taken from the local cache, or downloaded when the hub answers within seconds;
    otherwise lengths go unchecked and the note says so (transformers would retry for a minute).
    """
    if not source:
        return LengthTokenizer(None, "", "no tokenizer given: token lengths were not checked")
    from transformers import AutoTokenizer

    attempts = [{}] if Path(source).is_dir() else [{"local_files_only": True}]
    if not Path(source).is_dir() and os.environ.get("HF_HUB_OFFLINE") != "1" and _hub_reachable():
        attempts.append({})
    error: Exception | None = None
    for options in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **options)
            if not getattr(tokenizer, "is_fast", False):
                return LengthTokenizer(None, source, f"the tokenizer of {source} is not a fast tokenizer: "
                                                     "token lengths were not checked")
            return LengthTokenizer(tokenizer, source)
        except Exception as caught:  # any failure to load only disables the check
            error = caught
    reason = str(error).splitlines()[0] if error and str(error) else "not found locally and the hub is unreachable"
    return LengthTokenizer(None, source, f"the tokenizer of {source} could not be loaded ({reason}): "
                                         "token lengths were not checked")


@dataclass
class LengthStats:
    """Token lengths of a systematic sample (for the distribution) and exact counts of long texts."""

    lengths: dict[str, list[int]] = field(default_factory=dict)  # the sample, before any truncation
    over_limit: dict[str, int] = field(default_factory=dict)  # every text, exactly
    truncated: dict[str, int] = field(default_factory=dict)
    examples: int = 0  # examples checked
    sampled: int = 0  # examples in the sample

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1


def may_exceed(text: str, limit: int) -> bool:
    """False when `text` cannot have more than `limit` tokens: it has fewer than `limit` UTF-8 bytes.

    Every tokenizer in use (byte-level BPE, WordPiece, SentencePiece/Unigram with or without byte
    fallback) spends at least one byte of text on each token, plus at most one added prefix marker.
    """
    if len(text) >= limit:
        return True
    return not text.isascii() and len(text.encode("utf-8")) >= limit


class LengthChecker:
    """Applies the length limits to batches of pairs or prompts.

    Only texts that could be over their limit are tokenized, plus a systematic sample (the first
    `FULL_SAMPLE_EXAMPLES` examples and every `SAMPLE_EVERY`-th after them) for the distribution
    the report shows; the over-limit counts are exact.
    """

    FULL_SAMPLE_EXAMPLES = 10_000
    SAMPLE_EVERY = 10

    def __init__(self, tokenizer, prompt_limit: int, answer_limit: int, policy: str):
        if policy not in LENGTH_POLICIES:
            raise ValueError(f"length_policy must be one of {LENGTH_POLICIES}, got {policy!r}")
        self.backend = tokenizer.backend_tokenizer if tokenizer is not None else None
        self.limits = {"prompt": prompt_limit, "chosen": answer_limit, "rejected": answer_limit}
        self.policy = policy
        self.stats = LengthStats()

    def _in_sample(self, position: int) -> bool:
        return position < self.FULL_SAMPLE_EXAMPLES or position % self.SAMPLE_EVERY == 0

    def _token_counts(self, texts: list[str], limit: int, sampled: list[bool]) -> dict[int, int]:
        """Token count of every text that is sampled or could be over `limit`, by position."""
        wanted = [i for i, text in enumerate(texts) if sampled[i] or may_exceed(text, limit)]
        encodings = self.backend.encode_batch_fast([texts[i] for i in wanted], add_special_tokens=False)
        return {i: len(encoding) for i, encoding in zip(wanted, encodings)}

    def _cut(self, name: str, text: str) -> str:
        """`text` cut to its limit at a token boundary: a prompt keeps its end, an answer its beginning."""
        limit = self.limits[name]
        offsets = self.backend.encode(text, add_special_tokens=False).offsets
        if name == "prompt":
            return text[offsets[-limit][0]:]
        return text[: offsets[limit - 1][1]]

    def _limit(self, name: str) -> str:
        return f"{LIMIT_SETTINGS[name]}={self.limits[name]}"

    def _unusable_once_cut(self, example) -> Reject | None:
        """Why a truncated example cannot be used: a text cut down to whitespace, or answers made identical."""
        fault = text_fault(example)
        if fault:
            name, reason, what = fault
            return Reject(example.ref, reason, name, f"'{name}' {what} once truncated to {self._limit(name)} tokens")
        if isinstance(example, PreferencePair) and example.chosen == example.rejected:
            return Reject(example.ref, reasons.IDENTICAL_ANSWERS, "chosen, rejected",
                          f"the answers are identical once truncated to {self._limit('chosen')} tokens")
        return None

    def check(self, examples: list) -> tuple[list, list[Reject]]:
        """(examples kept, possibly truncated; rejects for those dropped). Without a tokenizer: all kept."""
        if self.backend is None or not examples:
            return examples, []
        names = examples[0].TEXT_FIELDS
        first = self.stats.examples
        self.stats.examples += len(examples)
        sampled = [self._in_sample(first + i) for i in range(len(examples))]
        self.stats.sampled += sum(sampled)
        counts = {}
        for name in names:
            counts[name] = self._token_counts([getattr(e, name) for e in examples], self.limits[name], sampled)
            self.stats.lengths.setdefault(name, []).extend(
                counts[name][i] for i in range(len(examples)) if sampled[i])
        kept, rejects = [], []
        for index, example in enumerate(examples):
            too_long = [n for n in names if counts[n].get(index, 0) > self.limits[n]]
            for name in too_long:
                self.stats.count(self.stats.over_limit, name)
            if not too_long:
                kept.append(example)
            elif self.policy == DROP:
                name = too_long[0]
                reason = reasons.PROMPT_TOO_LONG if name == "prompt" else reasons.ANSWER_TOO_LONG
                rejects.append(Reject(example.ref, reason, name, f"'{name}' has {counts[name][index]} tokens, over "
                                                                 f"{self._limit(name)}"))
            else:
                for name in too_long:
                    setattr(example, name, self._cut(name, getattr(example, name)))
                    self.stats.count(self.stats.truncated, name)
                reject = self._unusable_once_cut(example)
                if reject:
                    rejects.append(reject)
                else:
                    kept.append(example)
        return kept, rejects


def load_model_tokenizer(model_artifact_dir: str | None) -> LengthTokenizer:
    """The length tokenizer of a pipeline Model artifact (a model directory or a model reference)."""
    from components.common.models import model_source

    try:
        source = model_source(model_artifact_dir) if model_artifact_dir else None
    except (OSError, ValueError, KeyError) as error:
        return LengthTokenizer(None, str(model_artifact_dir),
                               f"the base model's tokenizer could not be found ({error}): "
                               "token lengths were not checked")
    return load_length_tokenizer(source)
