"""Why a row is not used: the reason codes of the rejects file and the data report.

Errors are rows that are wrong (they count against `max_bad_row_fraction`); filters are rows that
are well formed but left out by a setting or by the data's own shape (a prompt too long under
`length_policy="drop"`, a ranking whose responses all tie, an unpaired answer with no partner).
"""

MALFORMED_JSON = "malformed_json"
MALFORMED_CSV = "malformed_csv"
NOT_UTF8 = "not_utf8"
ROW_TOO_LARGE = "row_too_large"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
EMPTY_FIELD = "empty_field"
WRONG_TYPE = "wrong_type"
BAD_CHOICE = "bad_choice"
BAD_LABEL = "bad_label"
BAD_SCORE = "bad_score"
BAD_MESSAGES = "bad_messages"
IDENTICAL_ANSWERS = "identical_answers"
NO_SHARED_PROMPT = "no_shared_prompt"
BAD_GROUND_TRUTH = "bad_ground_truth"
RESERVED_COLUMN = "reserved_column"

PROMPT_TOO_LONG = "prompt_too_long"
ANSWER_TOO_LONG = "answer_too_long"
ALL_TIED = "all_tied"
NO_PARTNER = "no_partner"

DESCRIPTIONS: dict[str, str] = {
    MALFORMED_JSON: "not valid JSON",
    MALFORMED_CSV: "not a valid CSV record",
    NOT_UTF8: "bytes that are not UTF-8, or a lone surrogate UTF-8 cannot encode",
    ROW_TOO_LARGE: "a row larger than the size limit",
    NOT_AN_OBJECT: "not a JSON object",
    MISSING_FIELD: "a required field is missing",
    EMPTY_FIELD: "a required field is empty",
    WRONG_TYPE: "a value of the wrong type",
    BAD_CHOICE: "`choice` is not 0 or 1",
    BAD_LABEL: "`label` is not true or false",
    BAD_SCORE: "a score or rank that is not a number",
    BAD_MESSAGES: "a malformed message list",
    IDENTICAL_ANSWERS: "chosen and rejected are identical",
    NO_SHARED_PROMPT: "chosen and rejected share no prompt ending in an assistant turn",
    BAD_GROUND_TRUTH: "no usable ground truth: `ground_truth` not a string or number, or a GSM8K `answer` "
                      "without a final `#### N`",
    RESERVED_COLUMN: "a column named like an argument reward functions are called with",
    PROMPT_TOO_LONG: "prompt over prompt_sequence_length tokens (dropped)",
    ANSWER_TOO_LONG: "answer over target_sequence_length tokens (dropped)",
    ALL_TIED: "every response of the ranking ties: no pair",
    NO_PARTNER: "an unpaired answer with no answer of the opposite label for its prompt",
}

FILTERS = frozenset({PROMPT_TOO_LONG, ANSWER_TOO_LONG, ALL_TIED, NO_PARTNER})


def is_error(reason: str) -> bool:
    """True for reasons that make a row wrong (they count against the bad-row tolerance)."""
    return reason not in FILTERS
