"""Errors about the user's input: shown as one clear line, never as a traceback."""


class UserInputError(Exception):
    """Bad input from the user (a missing file, a malformed row, an unknown model...).

    The message must say what is wrong and where (file, row, field), and what is accepted.
    The command-line tool prints it on one line and exits non-zero.
    """
