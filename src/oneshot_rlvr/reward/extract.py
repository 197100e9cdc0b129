"""Final-answer extraction: the last `\\boxed{}`, then "the answer is ...", then the last number.

Lenient extraction also reads an answer written as several boxes in a row (`\\boxed{1}, \\boxed{2}`) as
one answer, a stated answer in a sentence ("Final Answer: the largest $n$ is 34."), and the answer
phrases of other languages ("答案是 5", "la réponse est 2,5"). The boxed (training) rule reads the last
box only.

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
# "The answer is 5", "the final answer is: $5$", "Answer: 5", "**Final Answer**\n5", and the same
# phrases in other languages; the last occurrence wins. `comma` marks languages that write 2,5 for 2.5.
_ANSWER_IS = re.compile(
    r"answer\s+is\s*:?|answer\s*\**\s*[:：]|final\s+answer\s*\**[ \t]*(?=\n)"
    r"|答案\s*(?:应该是|应为|應為|是|为|為|[:：])\s*[:：]?|答え\s*(?:は|[:：])"
    r"|(?P<comma>r[ée]ponse(?:\s+finale)?\s+(?:est|sera)\s*:?|r[ée]ponse(?:\s+finale)?\s*:"
    r"|respuesta(?:\s+final)?\s+es\s*:?|respuesta(?:\s+final)?\s*:"
    r"|antwort\s+(?:lautet|ist)\s*:?|antwort\s*:|risposta\s+è\s*:?|risposta\s*:"
    r"|resposta\s+é\s*:?|resposta\s*:|ответ\s*(?:[:：]|равен|—))",
    re.IGNORECASE,
)
# Thousands separators as LaTeX writes them: 10,000, 10{,}000, 11,\! 111.
_GROUP_SEP = r"(?:,|\{,\}|,\\!\s?)"
_NUMBER = re.compile(rf"-?\d+(?:{_GROUP_SEP}\d{{3}}(?!\d))*(?:\.\d+)?|-?\.\d+")
_SEPARATOR = re.compile(r"\{,\}|,\\!\s?|,")
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n|[。！；]|です")
# Where a stated answer that is a sentence gives its value: "the largest $n$ is 34", "n 的最大值是 34".
_COPULA = re.compile(r"\s(?:is|are|equals|est|vaut|sont|es|ist|è|é)\s+|是|为|為|(?<![<>!\\])=")
_DECIMAL_COMMA = re.compile(r"^(-?\d+),(\d+)$")
# Between the boxes of one answer written as several (`\boxed{1}, \boxed{2}`, `\boxed{a} \text{ and } \boxed{b}`):
# spaces, commas, "and"/"or", math delimiters, spacing commands and `x =`, nothing else.
_BOX_JOINER = re.compile(
    r"(?:\s|[,;&$]|\\[()\[\]]|\\\\|\\[,;:! ]|\\q?quad(?![a-zA-Z])|\band\b|\bor\b|\b[a-zA-Z](?:_\{?\w+\}?)?\s*="
    r"|\\(?:text|mbox|textrm)\s*\{\s*(?:and|or|,)?\s*\})*"
)
_MAX_JOINER = 40
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


def _braced(text: str, open_pos: int) -> int | None:
    """Index of the brace closing the group that opens at `open_pos`; None when it never closes."""
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
                return i
        i += 1
    return None


def _box_at(text: str, start: int, command: str) -> tuple[str | None, bool, int]:
    """(content of the box starting at `start` or None, whether its brace group never closes, its end)."""
    i = start + len(command)
    n = len(text)
    if i < n and text[i].isalpha():
        return None, False, i  # \boxedx or \fboxsep: another command
    while i < n and text[i] == " ":
        i += 1
    if i >= n:
        return None, False, i
    if text[i] == "{":
        close = _braced(text, i)
        if close is None:
            return None, True, n
        content, end = text[i + 1 : close], close + 1
    else:
        # `\boxed 5` (no braces): up to the end of the math or of the token
        content = re.split(r"[$\s]", text[i : i + MAX_ANSWER_CHARS], maxsplit=1)[0]
        end = i + len(content)
    return content.strip() or None, False, end


def _boxes(text: str) -> tuple[list[tuple[str, int, int]], bool]:
    """(the last non-empty box and the boxes right before it that make one answer with it, as
    (content, start, end) in text order; whether the last box never closes)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return [], False
    group: list[tuple[str, int, int]] = []  # last box first
    for match in reversed(list(_BOX_COMMAND.finditer(text))):
        content, unclosed, end = _box_at(text, match.start(), match.group(0))
        if not group:
            if unclosed:
                return [], True
            if content is not None:
                group.append((content, match.start(), end))
            continue
        gap = text[end : group[-1][1]]
        if content is None or end > group[-1][1] or len(gap) > _MAX_JOINER or not _BOX_JOINER.fullmatch(gap):
            break
        group.append((content, match.start(), end))
    return group[::-1], False


def _find_box(text: str) -> tuple[str | None, bool]:
    """(content of the last non-empty box or None, whether the last box never closes)."""
    group, unclosed = _boxes(text)
    return (group[-1][0] if group else None), unclosed


def _find_box_group(text: str) -> tuple[str | None, bool]:
    """`_find_box`, with the boxes written side by side as one answer joined: "1, 2"."""
    group, unclosed = _boxes(text)
    parts = list(dict.fromkeys(content for content, _, _ in group))  # "\boxed{5} \boxed{5}" is one answer
    return (", ".join(parts) if parts else None), unclosed


def last_boxed(text: str) -> str | None:
    """Content of the last non-empty `\\boxed{...}` or `\\fbox{...}`; None when there is none.

    An unclosed last box (a truncated response) gives None rather than a partial answer; empty boxes
    are skipped.
    """
    return _find_box(text)[0]


def box_group(text: str) -> str | None:
    """`last_boxed`, reading boxes written side by side as one answer: `\\boxed{1}, \\boxed{2}` -> "1, 2".

    Boxes count as one answer only when nothing but spaces, commas, "and"/"or" and math delimiters
    stands between them; "\\boxed{104}. Wait, it is \\boxed{106}" is the answer 106.
    """
    return _find_box_group(text)[0]


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    tail = deque(pattern.finditer(text), maxlen=1)
    return tail[0] if tail else None


def _answer_is(text: str) -> str | None:
    last = _last_match(_ANSWER_IS, text)
    if last is None:
        return None
    rest = text[last.end() : last.end() + MAX_ANSWER_CHARS].lstrip(" \t\n*")
    opener = _INLINE_MATH.match(rest)
    if opener:
        close = rest.find(_CLOSERS[opener.group(1)], len(opener.group(1)))
        if close > 0:
            return rest[len(opener.group(1)) : close].strip() or None
    end = _SENTENCE_END.search(rest)
    stated = strip_delimiters((rest[: end.start()] if end else rest).strip().strip("*").strip())
    if not stated:
        return None
    if last.group("comma"):
        stated = _DECIMAL_COMMA.sub(_decimal_comma, stated)
    return stated if looks_bare(stated) else _value_in_sentence(stated)


def _decimal_comma(match: re.Match[str]) -> str:
    """2,5 -> 2.5 and 0,125 -> 0.125, but not 1,250 (a thousands separator there too)."""
    whole, fraction = match.group(1), match.group(2)
    if len(fraction) == 3 and whole.lstrip("-") != "0":
        return match.group(0)
    return f"{whole}.{fraction}"


def _value_in_sentence(sentence: str) -> str:
    """The value a stated answer gives when it is a sentence: what follows its last "is" / "=",
    else its only number; else the sentence itself (graded as it stands, so usually wrong)."""
    copula = _last_match(_COPULA, sentence)
    if copula is not None:
        value = strip_delimiters(sentence[copula.end() :].strip().strip("*").strip())
        if value and looks_bare(value):
            return value
    numbers = _NUMBER.findall(sentence)
    if len(numbers) == 1:
        return _SEPARATOR.sub("", numbers[0])
    return sentence


def _closing_math(text: str) -> str | None:
    """The last inline math of the final line ("... the probability is $\\frac{3}{4}$.")."""
    line = text.rstrip()[-MAX_ANSWER_CHARS:].rsplit("\n", 1)[-1]
    last = _last_match(_INLINE_SPAN, line)
    if last is None:
        return None
    return (last.group(1) or last.group(2)).strip() or None


def _last_number(text: str) -> str | None:
    last = _last_match(_NUMBER, text)
    return _SEPARATOR.sub("", last.group(0)) if last else None


def extract_answer(response: str | None, *, mode: ExtractMode = "lenient") -> str | None:
    """The final answer of a response, or None.

    `boxed`: the last non-empty `\\boxed{}` only. `lenient` (the evaluation harness order): the last
    `\\boxed{}` (with the boxes written side by side before it, see `box_group`), else the text after the
    last "answer is" (or "答案是", "la réponse est", ...), else the last number. A last box that never
    closes (a response cut off at the length limit) gives None in both modes.
    """
    response = check_text(response, "response")
    if mode not in ("lenient", "boxed"):
        raise ValueError(f"mode must be 'lenient' or 'boxed', got {mode!r}")
    if not response:
        return None
    boxed, truncated = _find_box(response) if mode == "boxed" else _find_box_group(response)
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
    boxed, truncated = _find_box(response) if require_boxed else _find_box_group(response)
    if boxed is not None or truncated or require_boxed:
        return boxed
    stated = _answer_is(response)
    if stated is not None:
        return stated
    if looks_bare(response):
        return strip_delimiters(response) or None
    return _closing_math(response) or _last_number(response)
