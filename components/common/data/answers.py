r"""Final answers in text, as verifiable rewards and the GSM8K data read them, compared as numbers.

- GSM8K's convention: the final answer is the number after the last ``####`` (``#### 1,600``); commas
  between groups of three digits are removed, anything after the number is ignored.
- LaTeX's: the content of the last complete ``\boxed{...}`` (``\fbox`` too), braces nested inside it
  balanced (``\boxed{\frac{1}{2}}``); a ``\boxed{`` cut off before its closing brace does not count.

Two answers are the same when both read as numbers and are equal (``18`` = ``18.0`` = ``18.00``;
``1,800`` = ``1{,}800`` = ``1800``; ``\frac{1}{2}`` = ``\dfrac{1}{2}`` = ``1/2`` = ``0.5``, exactly, as
fractions), otherwise when their texts are equal once normalised. Normalising drops only what presents
an answer: spaces, ``$`` and ``\$``, ``%`` and ``\%``, degrees, ``\left``/``\right``, LaTeX spacing, a
unit in ``\text{...}`` after a number (``18\text{ dollars}``), and the ``\text{}`` wrapper around words.
Nothing symbolic: ``x+1`` and ``1+x`` differ (use TRL's ``trl.rewards:accuracy_reward`` with
math_verify for that), and so do ``1,5`` and ``1.5``: a comma counts only between groups of three digits.
"""

import re
from fractions import Fraction

GSM8K_MARKER = "####"
NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+"
_NUMBER = re.compile(NUMBER)
_FINAL_NUMBER = re.compile(rf"\s*\$?\s*({NUMBER})(?!\d|[,.]\d)")  # a number, not the start of a longer one
_FRACTIONS = (re.compile(rf"([+-]?)\\frac\{{({NUMBER})\}}\{{({NUMBER})\}}"), re.compile(rf"()({NUMBER})/({NUMBER})"))
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_UNIT = re.compile(r"(?<=[\d}])\\(?:text|mbox|mathrm)\{[^{}]*\}$")
_WRAPPER = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")
_SPACING = re.compile(r"\\(?:left|right|displaystyle)(?![a-zA-Z])|\\[,;:! ]|\s")
_DECORATION = re.compile(r"\\?\$|\\?%|\^\{?\\circ\}?|\\degree(?![a-zA-Z])")


def gsm8k_final_answer(text: str) -> str | None:
    """The number after the last ``####`` of `text`, without thousands commas; None when there is none."""
    _, marker, tail = text.rpartition(GSM8K_MARKER)
    match = _FINAL_NUMBER.match(tail) if marker else None
    return match.group(1).replace(",", "") if match else None


def last_boxed(text: str) -> str | None:
    r"""The content of the last complete ``\boxed{...}`` of `text`, or None."""
    found = None
    for match in _BOXED.finditer(text):
        content = _braced(text, match.end())
        if content is not None:
            found = content
    return found


def _braced(text: str, start: int) -> str | None:
    """The text from `start` to the brace that closes the one just before it, or None when none does."""
    depth = 1
    for position in range(start, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[start:position]
    return None


def normalized(answer: str) -> str:
    """`answer` without what only presents it (see the module's docstring)."""
    text = _SPACING.sub("", answer).replace("\u2212", "-").replace("{,}", ",")
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = _WRAPPER.sub(r"\1", _UNIT.sub("", text))
    return _DECORATION.sub("", text)


def as_number(answer: str) -> Fraction | None:
    r"""A normalised answer as an exact number: an integer, a decimal, ``a/b`` or ``\frac{a}{b}``; else None."""
    if _NUMBER.fullmatch(answer):
        return _fraction(answer)
    for pattern in _FRACTIONS:
        match = pattern.fullmatch(answer)
        if match:
            sign, numerator, denominator = match.groups()
            if _fraction(denominator) == 0:
                return None
            value = _fraction(numerator) / _fraction(denominator)
            return -value if sign == "-" else value
    return None


def _fraction(number: str) -> Fraction:
    return Fraction(number.replace(",", ""))


def same_answer(answer: str, truth: str) -> bool:
    """Whether `answer` gives `truth`: as numbers when both are numbers, else as normalised texts."""
    answer, truth = normalized(answer), normalized(truth)
    answer_number, truth_number = as_number(answer), as_number(truth)
    if answer_number is not None and truth_number is not None:
        return answer_number == truth_number
    return answer == truth
