"""String-level answer normalisation and the exact numeric comparison of the fast path.

Everything here is plain regular expressions and `fractions.Fraction`, so it runs in the calling
process without a time limit: each pattern is linear in its input and answers longer than
`MAX_ANSWER_CHARS` never get here. What these functions cannot decide is left to sympy in a worker
process (see `pool.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

# Real answers are short; a longer "answer" is a runaway generation and is graded as wrong.
MAX_ANSWER_CHARS = 4096
# Brace nesting deeper than this is no real answer, and the LaTeX parser takes seconds on it.
MAX_NESTING = 50
# Numbers whose decimal exponent is beyond this are left to sympy (which runs under a time limit).
_MAX_EXPONENT = 400
# A decimal matches a value when it agrees to this relative precision (about six significant digits,
# the precision math-verify rounds floats to).
_REL_TOL = Fraction(1, 10**6)

_UNIT_WORDS = (
    "square units|sq units|cubic units|units|unit|square feet|square inches|square meters|"
    "square centimeters|square cm|sq ft|cubic feet|cubic inches|cubic meters|cubic centimeters|"
    "centimeters|centimetres|centimeter|meters|metres|meter|kilometers|kilometer|millimeters|"
    "inches|inch|feet|foot|ft|yards|yard|miles|mile|mph|km/h|cm|mm|km|m|"
    "degrees|degree|radians|seconds|second|sec|minutes|minute|min|hours|hour|hrs|hr|days|day|"
    "weeks|week|months|month|years|year|dollars|dollar|cents|cent|pounds|lbs|lb|kg|grams|gram|g|"
    "liters|liter|litres|ml|gallons|gallon|ounces|oz|people|students|ways|times|points|coins|"
    "handshakes|games|pages|marbles|boxes|balls|cars|apples|numbers|integers|outfits|tiles"
)

_DELIMS = re.compile(r"^\s*(?:\$\$?|\\\(|\\\[)\s*(.*?)\s*(?:\$\$?|\\\)|\\\])\s*$", re.DOTALL)
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![a-zA-Z])\.?")
# `(?<!\\)`: the second backslash of a `\\` row break is not a spacing command.
_SPACING = re.compile(r"(?<!\\)\\[,;:!> ]|\\(?:quad|qquad|displaystyle|textstyle|limits)(?![a-zA-Z])")
_FRAC_ALIASES = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_TEXT_CMD = r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname|boldsymbol)"
_TRAILING_TEXT_UNIT = re.compile(r"(?<=[\d}).\s])\s*" + _TEXT_CMD + r"\s*\{[^{}\\]*\}(?:\^\{?[23]\}?)?\s*$")
_TRAILING_WORD_UNIT = re.compile(r"(?<=[\d}])\s+(?:" + _UNIT_WORDS + r")(?:\^\{?[23]\}?)?\s*$", re.IGNORECASE)
_TEXT_WRAP = re.compile(_TEXT_CMD + r"\s*\{([^{}]*)\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![a-zA-Z])")
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\{\s*percent\s*\}|\s+percent)\s*$")
# LaTeX thousands separators, spaced or not: 10{,}000, 14 {, }916, 11,\! 111, 3\!,250.
_THOUSANDS = re.compile(r"(?<=\d)\s*(?:\{\s*,\s*\}|,\s*\\!|\\!\s*,)\s*(?=\d{3}(?!\d))")
_THOUSANDS_PLAIN = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_ASSIGNMENT = re.compile(r"^\s*(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?(?:\([a-z]\))?\s*=\s*(?=[^=])")
_MIXED_SPACE = re.compile(r"^([+-]?\d+)\s+(\d+)\s*/\s*(\d+)$")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)|\\frac\s*(\d)\s*(?=\{)|\\frac(\{[^{}]*\})\s*(\d)")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d+|[a-zA-Z](?![a-zA-Z]))")
_SPACE_NOT_AFTER_CMD = re.compile(r"(?<![a-zA-Z])\s+|\s+(?![a-zA-Z])")
_CHOICE_GOLD = re.compile(r"^\(?([A-E])\)?$")
_CHOICE_PRED = re.compile(r"^(?:\(([A-E])\)|([A-E])(?=$|[\s.:)]))")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})\s*(?:([ap])\.?\s*m\.?)?$", re.IGNORECASE)
_WORDS = re.compile(r"^[A-Za-z][A-Za-z \-']*[A-Za-z]$")
_SYMBOL_ALIASES = (
    ("\\varnothing", "\\emptyset"),
    ("\\leqslant", "\\le"),
    ("\\geqslant", "\\ge"),
    ("\\leq", "\\le"),
    ("\\geq", "\\ge"),
    ("\\neq", "\\ne"),
    ("\\lbrace", "\\{"),
    ("\\rbrace", "\\}"),
    ("\\lvert", "|"),
    ("\\rvert", "|"),
    ("\\vert", "|"),
    ("\\dots", "\\ldots"),
    ("\\cdots", "\\ldots"),
    ("\\infinity", "\\infty"),
    ("−", "-"),
    ("×", "\\times"),
    ("π", "\\pi"),
    ("∞", "\\infty"),
    ("≤", "\\le"),
    ("≥", "\\ge"),
    ("√", "\\sqrt"),
)

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_RE_DECIMAL = re.compile(rf"^([+-]?){_NUM}$")
_RE_SCI_E = re.compile(rf"^([+-]?{_NUM})[eE]([+-]?\d+)$")
_RE_SCI_TIMES = re.compile(rf"^([+-]?{_NUM})(?:\\times|\\cdot|\*)10\^\{{?([+-]?\d+)\}}?$")
_RE_POW10 = re.compile(r"^([+-]?)10\^\{?([+-]?\d+)\}?$")
_RE_FRAC = re.compile(rf"^([+-]?)\\frac\{{([+-]?{_NUM})\}}\{{([+-]?{_NUM})\}}$")
_RE_SLASH = re.compile(rf"^([+-]?{_NUM})/([+-]?{_NUM})$")
_RE_REPEATING = re.compile(r"^([+-]?)(\d*)\.(\d*)\\overline\{(\d{1,20})\}$")
_RE_MIXED = re.compile(r"^([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")


@dataclass(frozen=True)
class Answer:
    """A normalised answer: cleaned LaTeX for sympy and a canonical key for string comparison."""

    latex: str
    """Cleaned LaTeX (valid input for the sympy parser), percent sign removed."""
    key: str
    """`latex` without spaces: two answers with equal keys are equivalent."""
    percent: bool
    """Whether the answer was written as a percentage (then `x%`, `x` and `x/100` all match)."""


def strip_delimiters(text: str) -> str:
    """`$x$`, `$$x$$`, `\\(x\\)` and `\\[x\\]` -> `x`."""
    match = _DELIMS.match(text)
    return match.group(1) if match else text.strip()


def _strip_units(s: str) -> str:
    # Two passes catch "5 \text{cm}^2" after "5 \text{ square} \text{cm}" style stacks.
    for _ in range(2):
        stripped = _TRAILING_TEXT_UNIT.sub("", s)
        stripped = _TRAILING_WORD_UNIT.sub("", stripped).strip()
        if not stripped or stripped == s:
            break
        s = stripped
    return s


def _fix_short_commands(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{2}` -> `\\frac{1}{2}`, `\\sqrt2` -> `\\sqrt{2}`."""

    def frac(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}"
        if m.group(3) is not None:
            return f"\\frac{{{m.group(3)}}}"
        return f"\\frac{m.group(4)}{{{m.group(5)}}}"

    s = _FRAC_SHORT.sub(frac, s)
    return _SQRT_SHORT.sub(lambda m: f"\\sqrt{{{m.group(1)}}}", s)


@lru_cache(maxsize=32768)
def normalize(text: str) -> Answer:
    """Normalise an extracted answer (or a bare gold) to cleaned LaTeX plus a comparison key."""
    s = strip_delimiters(text).replace("\n", " ").replace("\t", " ")
    for old, new in _SYMBOL_ALIASES:
        s = s.replace(old, new)
    s = _LEFT_RIGHT.sub("", s)
    s = _FRAC_ALIASES.sub(r"\\frac", s)
    s = _THOUSANDS.sub("", s)
    s = _SPACING.sub(" ", s).replace("~", " ")
    s = s.replace("\\$", "").replace("$", "").strip()
    s = _DEGREES.sub("", s)
    s = s.rstrip(" .").lstrip()
    percent = bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s)
    s = _strip_units(s)
    if _THOUSANDS_PLAIN.match(s):
        s = s.replace(",", "")
    s = _ASSIGNMENT.sub("", s, count=1) if s.count("=") == 1 and "," not in s else s
    mixed = _MIXED_SPACE.match(s)
    if mixed:
        s = f"{mixed.group(1)}\\frac{{{mixed.group(2)}}}{{{mixed.group(3)}}}"
    s = _fix_short_commands(s).strip()
    if s.startswith("+"):
        s = s[1:]
    key = _SPACE_NOT_AFTER_CMD.sub("", _TEXT_WRAP.sub(r"\1", s))
    return Answer(latex=s, key=key, percent=percent)


def nesting_depth(text: str) -> int:
    """The deepest brace nesting in `text` (escaped braces `\\{` `\\}` count too; an upper bound is enough)."""
    depth = deepest = 0
    for c in text:
        if c == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif c == "}":
            depth = max(0, depth - 1)
    return deepest


def choice_letter(text: str, *, strict: bool = True) -> str | None:
    """`\\text{(C)}`, `(C)`, `C` -> "C"; None when it is not a letter choice.

    With `strict=False` a leading choice followed by more text also counts (`\\textbf{(C) }12`), the way
    responses often restate the option.
    """
    s = _TEXT_WRAP.sub(r"\1", strip_delimiters(text)).strip()
    if strict:
        match = _CHOICE_GOLD.match(s)
        return match.group(1) if match else None
    match = _CHOICE_PRED.match(s)
    return (match.group(1) or match.group(2)) if match else None


def clock_time(text: str) -> tuple[int, int, str] | None:
    """`4:30 p.m.` -> (4, 30, "p"); `16:05` -> (16, 5, ""); None when it is not a time of day."""
    s = _TEXT_WRAP.sub(r"\1", strip_delimiters(text)).strip()
    match = _TIME.match(s)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), (match.group(3) or "").lower()


def loose_words(text: str) -> str:
    """Lower-cased text with `\\text{}` unwrapped and spaces collapsed, for comparing word answers."""
    s = _TEXT_WRAP.sub(r"\1", strip_delimiters(text)).strip().rstrip(".")
    return " ".join(s.lower().split())


def words(text: str) -> str | None:
    """A plain-words answer (`\\text{Evelyn}`, `\\text{even}`), lower-cased; None otherwise."""
    s = strip_delimiters(text).strip()
    inner = _TEXT_WRAP.fullmatch(s)
    if inner:
        s = inner.group(1).strip()
    elif not (" " in s and _WORDS.match(s)):
        # A bare run of letters like "xy" may be a product of variables: leave it to sympy.
        return None
    return " ".join(s.lower().split()) if _WORDS.match(s) and len(s) >= 3 else None


def _exact(sign: str, text: str) -> Fraction:
    value = Fraction(text)
    return -value if sign == "-" else value


def parse_number(key: str) -> tuple[Fraction, bool] | None:
    """A plain number in `key` form -> (value, exact); None when it is anything else.

    Exact means written without a decimal point (integers, fractions, mixed numbers); decimals are
    compared with a relative tolerance. Handles `12.8`, `-\\frac{3}{4}`, `3/4`, `2\\frac{1}{2}`,
    `6.02\\times10^{23}`, `1e-5`, `10^{6}`, `0.1\\overline{6}`.
    """
    if len(key) > 200:
        return None
    if m := _RE_DECIMAL.match(key):
        return Fraction(key), "." not in key
    if m := _RE_FRAC.match(key):
        num, den = Fraction(m.group(2)), Fraction(m.group(3))
        if den == 0:
            return None
        exact = "." not in m.group(2) + m.group(3)
        return (-num / den if m.group(1) == "-" else num / den), exact
    if m := _RE_SLASH.match(key):
        num, den = Fraction(m.group(1)), Fraction(m.group(2))
        return (None if den == 0 else (num / den, "." not in key))
    if m := _RE_MIXED.match(key):
        units, top, bottom = int(m.group(2)), int(m.group(3)), int(m.group(4))
        if bottom == 0 or top >= bottom:
            return None  # "2\frac{5}{3}" is ambiguous (product or mixed number): let sympy read it
        magnitude = units + Fraction(top, bottom)
        return (-magnitude if m.group(1) == "-" else magnitude), True
    if m := _RE_REPEATING.match(key):
        integer, fixed, period = m.group(2) or "0", m.group(3), m.group(4)
        start = Fraction(f"{integer}.{fixed}" if fixed else integer)
        repeat = Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
        return (-(start + repeat) if m.group(1) == "-" else start + repeat), True
    for pattern in (_RE_SCI_E, _RE_SCI_TIMES):
        if m := pattern.match(key):
            exponent = int(m.group(2))
            if abs(exponent) > _MAX_EXPONENT:
                return None
            return Fraction(m.group(1)) * Fraction(10) ** exponent, "." not in m.group(1)
    if m := _RE_POW10.match(key):
        exponent = int(m.group(2))
        if abs(exponent) > _MAX_EXPONENT:
            return None
        return _exact(m.group(1), "1") * Fraction(10) ** exponent, True
    return None


def _close(a: Fraction, b: Fraction, exact: bool) -> bool:
    if exact:
        return a == b
    return abs(a - b) <= _REL_TOL * max(abs(a), abs(b))


def numbers_match(gold: Answer, pred: Answer) -> bool | None:
    """Compare two answers that are both plain numbers; None when either is not one.

    A percentage on either side also matches the value scaled by 100 (25% = 25 = 0.25), like the
    evaluation harness.
    """
    g = parse_number(gold.key)
    p = parse_number(pred.key)
    if g is None or p is None:
        return None
    exact = g[1] and p[1]
    if _close(g[0], p[0], exact):
        return True
    if gold.percent or pred.percent:
        hundred = Fraction(100)
        return _close(g[0] / hundred, p[0], exact) or _close(g[0], p[0] / hundred, exact)
    return False
