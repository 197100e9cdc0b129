"""Errors that mean "your input is wrong", as opposed to a bug.

The `rlvr` command prints these as one line naming the file, row or setting and exits with status 2.
"""


class RlvrError(ValueError):
    """Bad input (a file, a row, a setting); the message names it."""
