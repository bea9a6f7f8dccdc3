"""The vocabulary of the sample task: who or what each post is about, and the phrases around it.

Every post is centred on one KEY NOUN (its key fact: the cat, the landlord, the laptop...). The
key nouns are the only words the gold score looks up, so no other phrase here may contain one;
`check_lexicon()` enforces that and runs whenever the generator runs.
"""

import re
from dataclasses import dataclass

WORD_PATTERN = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Category:
    """A family of key nouns that share the phrases a post about them is made of."""

    subreddit: str
    nouns: tuple[str, ...]
    problems: tuple[str, ...]  # each reads after "my <noun> ..."
    contexts: tuple[str, ...]  # sentences with a "{noun}" slot and optional "{duration}"/"{time_ago}"
    attempts: tuple[str, ...]  # each reads after "I tried ..."


_PEOPLE_CONTEXTS = (
    "I have known my {noun} for {duration}.",
    "Things with my {noun} were fine until {time_ago}.",
    "My {noun} and I used to get along really well.",
)
_PEOPLE_ATTEMPTS = (
    "talking to them calmly",
    "sending a long message",
    "ignoring it for a while",
    "setting clear rules",
    "asking for advice online",
)

CATEGORIES: tuple[Category, ...] = (
    Category(
        subreddit="pets",
        nouns=("cat", "dog", "parrot", "hamster", "rabbit", "puppy", "kitten", "horse"),
        problems=(
            "keeps waking me up at night",
            "will not eat anything",
            "bites everyone who visits",
            "chews up all my shoes",
            "hides under the bed all day",
            "got sick after we moved",
            "scratches all the furniture",
        ),
        contexts=(
            "I have had my {noun} for {duration}.",
            "We adopted my {noun} {time_ago}.",
            "My {noun} used to be very calm and happy.",
        ),
        attempts=("a new diet", "talking to the vet", "a new bed", "more exercise", "training videos"),
    ),
    Category(
        subreddit="renting",
        nouns=("landlord", "roommate", "neighbor", "flatmate"),
        problems=(
            "keeps playing loud music at night",
            "raised the rent again",
            "will not fix the broken heater",
            "took my parking spot",
            "never pays the bills on time",
            "keeps eating my food",
            "threw a party without asking",
        ),
        contexts=_PEOPLE_CONTEXTS,
        attempts=_PEOPLE_ATTEMPTS,
    ),
    Category(
        subreddit="work",
        nouns=("boss", "coworker", "manager", "intern", "client", "recruiter"),
        problems=(
            "keeps taking credit for my work",
            "yells at me in meetings",
            "gave me a bad review",
            "calls me on weekends",
            "ignores all my emails",
            "wants me to work late every day",
            "blamed me for a mistake",
        ),
        contexts=_PEOPLE_CONTEXTS,
        attempts=_PEOPLE_ATTEMPTS,
    ),
    Category(
        subreddit="family",
        nouns=("sister", "brother", "mother", "father", "cousin", "grandma", "uncle", "aunt"),
        problems=(
            "keeps asking me for money",
            "stopped talking to me",
            "criticizes every decision I make",
            "wants to move in with me",
            "forgot my birthday again",
            "reads my messages without asking",
        ),
        contexts=_PEOPLE_CONTEXTS,
        attempts=_PEOPLE_ATTEMPTS,
    ),
    Category(
        subreddit="relationships",
        nouns=("boyfriend", "girlfriend", "husband", "wife", "fiance", "partner"),
        problems=(
            "keeps lying to me",
            "forgot our anniversary",
            "wants to move across the country",
            "spends all our money",
            "never listens to me",
            "is jealous of everyone I talk to",
        ),
        contexts=_PEOPLE_CONTEXTS,
        attempts=_PEOPLE_ATTEMPTS,
    ),
    Category(
        subreddit="college",
        nouns=("teacher", "professor", "classmate", "tutor", "coach"),
        problems=(
            "failed me on the final test",
            "gave me a zero for a late essay",
            "ignores my questions in class",
            "keeps cancelling our sessions",
            "accused me of cheating",
            "gives way too much homework",
        ),
        contexts=_PEOPLE_CONTEXTS,
        attempts=_PEOPLE_ATTEMPTS,
    ),
    Category(
        subreddit="techsupport",
        nouns=("car", "laptop", "phone", "bike", "fridge", "printer", "router"),
        problems=(
            "broke down again",
            "will not turn on",
            "makes a strange noise",
            "keeps crashing",
            "stopped working after the update",
            "overheats all the time",
            "died right after the warranty ended",
        ),
        contexts=(
            "I bought my {noun} {time_ago}.",
            "I have used my {noun} every day for {duration}.",
            "My {noun} is not even that old.",
        ),
        attempts=("restarting it", "a factory reset", "calling support", "watching repair videos", "cleaning it"),
    ),
)

DURATIONS = ("two years", "six months", "three weeks", "a long time", "almost a year", "five years")
TIMES_AGO = ("last spring", "a few months ago", "two weeks ago", "last year", "in january")
FEELINGS = ("stressed", "exhausted", "frustrated", "worried", "angry", "lost", "anxious", "sad")
ASKS = ("What should I do?", "Any advice?", "How do I fix this?", "Is this normal?", "Am I overreacting?")

# Summaries that keep the situation but drop the key fact.
VAGUE_SUMMARIES = (
    "I have a problem and I need some advice.",
    "Something keeps going wrong and I feel {feeling}.",
    "Need advice about my situation.",
    "Things are bad right now, any advice?",
    "It {problem}, what should I do?",
    "Someone {problem} and I feel {feeling}.",
)
# What a rambling summary appends after its first clause.
RAMBLES = (
    "and I tried {attempt} but nothing changed at all",
    "and I honestly do not know what to do anymore",
    "so I am feeling really {feeling} about the whole thing and I cannot sleep",
    "and everyone I asked gave me different advice so I am still {feeling}",
    "and it has been like this for {duration} even though I tried {attempt}",
)

KEY_NOUNS: tuple[str, ...] = tuple(noun for category in CATEGORIES for noun in category.nouns)
CATEGORY_OF: dict[str, Category] = {noun: category for category in CATEGORIES for noun in category.nouns}


def words(text: str) -> list[str]:
    """The lowercase words of a text (letters only), as the gold score counts them."""
    return WORD_PATTERN.findall(text.lower())


def key_nouns_in(text: str) -> list[str]:
    """Key nouns mentioned in `text` (singular or plural), in order of appearance, with repeats."""
    found = []
    for word in words(text):
        if word in CATEGORY_OF:
            found.append(word)
        elif word.endswith("s") and word[:-1] in CATEGORY_OF:
            found.append(word[:-1])
    return found


def check_lexicon() -> None:
    """Fail loudly if any phrase other than a key noun mentions a key noun."""
    if len(set(KEY_NOUNS)) != len(KEY_NOUNS):
        raise ValueError("a key noun is listed twice")
    phrases = [*DURATIONS, *TIMES_AGO, *FEELINGS, *ASKS, *VAGUE_SUMMARIES, *RAMBLES]
    for category in CATEGORIES:
        phrases += [*category.problems, *category.contexts, *category.attempts, category.subreddit]
    for phrase in phrases:
        if key_nouns_in(phrase.replace("{noun}", "")):
            raise ValueError(f"phrase {phrase!r} mentions a key noun: {key_nouns_in(phrase)}")
