"""Final-answer extraction: the last `\\boxed{}`, then "the answer is ...", then the last number.

All scans are linear in the response length (a 1 MB response takes milliseconds) and never recurse,
so deeply nested braces cannot exhaust the stack.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Literal

from oneshot_rlvr.reward.normalize import MAX_ANSWER_CHARS, strip_delimiters

ExtractMode = Literal["lenient", "boxed"]

_BOX_COMMAND = re.compile(r"\\boxed|\\fbox")
# "The answer is 5", "the final answer is: $5$", "Answer: 5"; the last occurrence wins.
_ANSWER_IS = re.compile(r"answer\s+is\s*:?|answer\s*:", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_INLINE_MATH = re.compile(r"^(\$\$?|\\\(|\\\[)")
_INLINE_SPAN = re.compile(r"\$([^$]+)\$|\\\((.+?)\\\)")
_CLOSERS = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
# Words outside LaTeX commands and \\text{}; more than two of them mark prose, not a bare answer
# like "4:30 p.m.", "x = 5 or x = -5" or "100 square units".
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_BARE_MAX_WORDS = 2
_TEXT_BODY = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{[^{}]*\}")
_BARE_MAX_CHARS = 200


def check_text(value: object, name: str) -> str | None:
    """Accept str (and bytes, decoded leniently); None stays None; anything else is a TypeError."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"{name} must be str, got {type(value).__name__}")


def _braced(text: str, open_pos: int) -> str | None:
    """Content of the brace group opening at `open_pos`; None when it never closes."""
    depth = 0
    i = open_pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # `\{` and `\}` are literal braces, not grouping
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_pos + 1 : i]
        i += 1
    return None


def _box_at(text: str, start: int, command: str) -> tuple[str | None, bool]:
    """(content of the box starting at `start` or None, whether its brace group never closes)."""
    i = start + len(command)
    n = len(text)
    if i < n and text[i].isalpha():
        return None, False  # \boxedx or \fboxsep: another command
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return None, False
    if text[i] == "{":
        content = _braced(text, i)
        if content is None:
            return None, True
    else:
        # `\boxed 5` (no braces): up to the end of the math or of the token
        content = re.split(r"[$\s]", text[i : i + MAX_ANSWER_CHARS], maxsplit=1)[0]
    return content.strip() or None, False


def _find_box(text: str) -> tuple[str | None, bool]:
    """(content of the last non-empty box or None, whether the last box never closes)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None, False
    for match in reversed(list(_BOX_COMMAND.finditer(text))):
        content, unclosed = _box_at(text, match.start(), match.group(0))
        if content is not None or unclosed:
            return content, unclosed
    return None, False


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty `\\boxed{...}` or `\\fbox{...}`; None when there is none.

    An unclosed last box (a truncated response) gives None rather than a partial answer; empty boxes
    are skipped.
    """
    return _find_box(text)[0]


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    tail = deque(pattern.finditer(text), maxlen=1)
    return tail[0] if tail else None


def _answer_is(text: str) -> str | None:
    last = _last_match(_ANSWER_IS, text)
    if last is None:
        return None
    rest = text[last.end() : last.end() + MAX_ANSWER_CHARS].lstrip()
    opener = _INLINE_MATH.match(rest)
    if opener:
        close = rest.find(_CLOSERS[opener.group(1)], len(opener.group(1)))
        if close > 0:
            return rest[len(opener.group(1)) : close].strip() or None
    end = _SENTENCE_END.search(rest)
    answer = (rest[: end.start()] if end else rest).strip().strip("*").strip()
    return strip_delimiters(answer) or None


def _closing_math(text: str) -> str | None:
    """The last inline math of the final line ("... the probability is $\\frac{3}{4}$.")."""
    line = text.rstrip()[-MAX_ANSWER_CHARS:].rsplit("\n", 1)[-1]
    last = _last_match(_INLINE_SPAN, line)
    if last is None:
        return None
    return (last.group(1) or last.group(2)).strip() or None


def _last_number(text: str) -> str | None:
    last = _last_match(_NUMBER, text)
    return last.group(0).replace(",", "") if last else None


def extract_answer(response: str | None, *, mode: ExtractMode = "lenient") -> str | None:
    """The final answer of a response, or None.

    `boxed`: the last non-empty `\\boxed{}` only. `lenient` (the evaluation harness order): the last
    `\\boxed{}`, else the text after the last "answer is", else the last number. A last box that never
    closes (a response cut off at the length limit) gives None in both modes.
    """
    response = check_text(response, "response")
    if mode not in ("lenient", "boxed"):
        raise ValueError(f"mode must be 'lenient' or 'boxed', got {mode!r}")
    if not response:
        return None
    boxed, truncated = _find_box(response)
    if boxed is not None or truncated or mode == "boxed":
        return boxed  # a truncated last box means the final answer is missing, not "use a number"
    return _answer_is(response) or _last_number(response)


def looks_bare(response: str) -> bool:
    """Whether a response is itself an answer (`2x + 3`, `x = 5`, `\\text{Evelyn}`), not prose."""
    if len(response) > _BARE_MAX_CHARS or "\n" in response.strip() or "\\boxed" in response:
        return False
    inner = strip_delimiters(response)
    wrapped = inner != response.strip() and "$" not in inner and "\\(" not in inner
    if ("$" in response or "\\(" in response) and not wrapped:
        return False  # prose with inline math ("Thus $p + q = 113$"), not one wrapped answer
    return len(_WORD.findall(_TEXT_BODY.sub(" ", response))) <= _BARE_MAX_WORDS


def answer_for_grading(response: str | None, *, require_boxed: bool) -> str | None:
    """The answer `verify` grades: the boxed answer, or the lenient one with bare answers taken whole.

    A short one-line response without a box or "answer is" is read as the answer itself, so
    `verify("2x + 3", "2x + 3")` holds; longer responses fall back to the last number.
    """
    response = check_text(response, "response")
    if not response:
        return None
    boxed, truncated = _find_box(response)
    if boxed is not None or truncated or require_boxed:
        return boxed
    stated = _answer_is(response)
    if stated is not None:
        return stated
    if looks_bare(response):
        return strip_delimiters(response) or None
    return _closing_math(response) or _last_number(response)
