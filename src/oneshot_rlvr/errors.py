"""Errors that mean "your input is wrong", as opposed to a bug.

The `rlvr` command prints these as one line naming the file, row or setting and exits with status 2.
"""


class RlvrError(ValueError):
    """Bad input (a file, a row, a setting); the message names it."""


def install_hint(extra: str) -> str:
    """How to add an optional extra, the way the README installs the package (from a checkout)."""
    return f"pip install -c constraints-cpu.txt -e '.[{extra}]' in the oneshot-rlvr checkout"
