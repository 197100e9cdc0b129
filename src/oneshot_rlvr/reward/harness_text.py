"""The evaluation harness's answer extraction and string normalisation (Qwen2.5-Math `parser.py`).

Written from the harness's observable behaviour, quirks included, because the point is to reproduce
its verdicts: it reads a cut-off `\\boxed{5` as 5, an empty last box as no answer, drops trailing
`\\text{...}` as a unit, removes a list of English unit words, turns number words into digits, deletes
every "and", and falls back to the last number of a response without a box. See docs/grading.md.

Everything here is pure string work; the equality rules live in `harness_equal`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Where the harness treats a benchmark specially: Minerva keeps its units; the gold of MATH-style
# benchmarks is read from the solution's last box; OlympiadBench's gold is the first `final_answer`.
SOLUTION_GOLD = ("math", "math500", "minerva_math")
KEEP_UNITS = ("minerva_math", "carp_en")
LIST_GOLD = ("olympiadbench",)
ANSWER_GOLD = ("aime24", "aime25", "amc23", "aime24x8", "aime25x8", "amc23x8")
BENCHMARKS = (*SOLUTION_GOLD, *LIST_GOLD, *ANSWER_GOLD)

# Where a response ends for the harness (its stop words for chain-of-thought prompts).
STOP_WORDS = ("</s>", "<|im_end|>", "<|endoftext|>")

# The harness's unit words (mostly from MathQA), removed when they stand alone; each also as a plural.
_UNITS_BASE = (
    "east", "degree", "mph", "kmph", "ft", "m sqaure", " m east", "sq m", "deg", "mile", "q .", "monkey",
    "prime", "ratio", "profit of rs", "rd", "o", "gm", "p . m", "lb", "tile", "per", "dm", "lt", "gain",
    "ab", "way", "west", "a .", "b .", "c .", "d .", "e .", "f .", "g .", "h .", "t", "a", "h",
    "no change", "men", "soldier", "pie", "bc", "excess", "st", "inches", "noon", "percent", "by", "gal",
    "kmh", "c", "acre", "rise", "a . m", "th", "π r 2", "sq", "mark", "l", "toy", "coin", "sq . m",
    "gallon", "° f", "profit", "minw", "yr", "women", "feet", "am", "pm", "hr", "cu cm", "square",
    "v â € ™", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s", "ohm", "number", "kmph", "day", "hour",
    "minute", "min", "second", "man", "woman", "sec", "cube", "mt", "sq inch", "mp", "∏ cm ³", "hectare",
    "more", "sec", "unit", "cu . m", "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm",
    "apple", "liter", "loss", "yard", "pure", "year", "increase", "decrease", "d", "less", "Surface",
    "litre", "pi sq m", "s .", "metre", "meter", "inch",
)
_UNITS = (*_UNITS_BASE, *(u + "s" for u in _UNITS_BASE))
# The harness pastes each word into a regex unescaped, so "q ." also matches "q x": kept as is. A word
# can only match where each of its pieces between dots occurs literally, which substring tests check
# first (most answers hold none of them, and the tests cost far less than the regexes).
_UNIT_PATTERNS = tuple(
    (pieces[0], pieces[1:], re.compile(r"(^|\W)" + u + r"($|\W)"))
    for u in _UNITS
    for pieces in [[p for p in u.split(".") if p]]
)

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000,
}
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SCALES = (("billion", 1_000_000_000), ("million", 1_000_000), ("thousand", 1000))


def _group_value(words: Sequence[str]) -> int:
    """A number below a thousand from its words, by the word2number package's fixed patterns."""
    values = [_NUMBER_WORDS[w] for w in words]  # an empty group raises IndexError below: not a number
    if len(values) == 4:
        return values[0] * values[1] + values[2] + values[3]
    if len(values) == 3:
        return values[0] * values[1] + values[2]
    if len(values) == 2:
        return values[0] * values[1] if 100 in values else values[0] + values[1]
    return values[0]


def words_to_number(text: str) -> int | float:
    """A number written in English words ("two hundred and five" -> 205), as the harness reads them.

    Every word that is not a number word is ignored, so "x plus one" reads as 1: the harness (through
    the word2number package) does the same. Raises ValueError or IndexError where it finds no number.
    """
    text = text.replace("-", " ").lower()
    if text.isdigit():
        return int(text)
    words = [w for w in text.strip().split() if w in _NUMBER_WORDS or w == "point"]
    if not words:
        raise ValueError("no number words")
    if any(words.count(w) > 1 for w in ("thousand", "million", "billion", "point")):
        raise ValueError("a scale word twice")
    decimals: list[str] = []
    if "point" in words:
        cut = words.index("point")
        words, decimals = words[:cut], words[cut + 1 :]
    at = {name: words.index(name) if name in words else -1 for name, _ in _SCALES}
    if (at["thousand"] > -1 and (at["thousand"] < at["million"] or at["thousand"] < at["billion"])) or (
        -1 < at["million"] < at["billion"]
    ):
        raise ValueError("scales out of order")
    total: int | float = 0
    if len(words) == 1:
        total = _NUMBER_WORDS[words[0]]
    elif words:
        total = _scaled_total(words, at)
    if decimals:
        total += float("0." + "".join(str(_NUMBER_WORDS[w]) for w in decimals)) if all(
            w in _DIGIT_WORDS for w in decimals) else 0
    return total


def _scaled_total(words: list[str], at: dict[str, int]) -> int:
    total, start = 0, 0
    for name, scale in _SCALES:
        if at[name] > -1:
            total += _group_value(words[start : at[name]]) * scale
            start = at[name] + 1
    last = max(at.values())
    if last == -1:
        return total + _group_value(words)
    return total + (_group_value(words[last + 1 :]) if last != len(words) - 1 else 0)


def _convert_word_number(text: str) -> str:
    try:
        return str(words_to_number(text))
    except (ValueError, IndexError):
        return text


def _fix_fracs(text: str) -> str:
    """\\frac12 -> \\frac{1}{2}, \\frac1b -> \\frac{1}{b}; a \\frac with under two characters after it
    leaves the whole string unchanged."""
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if part[:1] == "{":
            out += part
            continue
        if len(part) < 2:
            return text
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _fix_a_slash_b(text: str) -> str:
    """An integer over an integer written a/b -> \\frac{a}{b} (only when it reads back exactly)."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    a: object
    b: object
    a, b = parts
    try:
        if "sqrt" not in parts[0]:
            a = int(parts[0])
        if "sqrt" not in parts[1]:
            b = int(parts[1])
    except ValueError:
        return text
    if text != f"{a}/{b}":
        return text
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_units(text: str) -> str:
    for _ in range(2):
        for first, rest, pattern in _UNIT_PATTERNS:
            if first not in text or (rest and not all(p in text for p in rest)):
                continue
            stripped = pattern.sub(r"\1\2", text)
            if stripped:
                text = stripped
    return text


def strip_string(text: str, *, keep_units: bool = False) -> str:
    """The harness's normalisation of an answer string (its `strip_string`), step by step."""
    s = str(text).strip().replace("\n", "").rstrip(".").replace("\\!", "")
    s = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", s)
    s = re.sub(r"\\end\{array\}", r"\\end{pmatrix}", s).replace("bmatrix", "pmatrix")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")
    without_unit = re.sub(r"\\text{.*?}$", "", s).strip()  # a trailing \text{...} is taken as a unit
    if without_unit and without_unit != s:
        s = without_unit
    if not keep_units:
        s = _remove_units(s)
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "").replace("\\(", "").replace("\\)", "")
    s = _convert_word_number(s)
    s = re.sub(r"\\text\{(.*?)\}", r"\1", s)
    for key in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        s = s.replace(key, "")
    s = s.replace("\\emptyset", "{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    # (The harness also unwraps "{x}" when the whole string is alphanumeric, which it never is.)
    s = s.replace("infinity", "\\infty")
    if "\\infty" not in s:
        s = s.replace("inf", "\\infty")
    s = s.replace("+\\inity", "\\infty").replace("and", "").replace("\\mathbf", "")
    s = re.sub(r"\\mbox{.*?}", "", s)
    if "j" in s and "i" not in s:
        s = s.replace("j", "i")
    s = re.sub(r"(\d+)\.0*([^\d])", r"\1\2", s)
    s = re.sub(r"(\d+)\.0*$", r"\1", s)
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5" -> "5"
        s = sides[1]
    s = re.sub(r"\\sqrt(\w+)", r"\\sqrt{\1}", s).replace(" ", "")
    return _fix_a_slash_b(_fix_fracs(s))


def last_box(text: str) -> str:
    """What follows the last "boxed": its braced content (to the end when cut off), else up to a "$"."""
    tail = text.split("boxed")[-1]
    if not tail:
        return ""
    if tail[0] != "{":
        return tail.split("$")[0].strip()
    depth, end = 1, len(tail)
    for i in range(1, len(tail)):
        if tail[i] == "{":
            depth += 1
        elif tail[i] == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
    return tail[1:end]


def raw_answer(response: str) -> str | None:
    """The answer span the harness reads, before normalisation; None for an empty last box's tail.

    In order: Minerva's "final answer is $...$. I hope", the last "boxed", "the answer is",
    "final answer is", "答案是", else the last number (commas removed first).
    """
    text = response.replace("\u043a\u0438", "")
    if "final answer is $" in text and "$. I hope" in text:
        return text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    if "boxed" in text:
        if not text.split("boxed")[-1]:
            return None  # the harness returns "" at once, before any normalisation
        return last_box(text)
    if "he answer is" in text:
        return text.split("he answer is")[-1].strip()
    if "final answer is" in text:
        return text.split("final answer is")[-1].strip()
    if "答案是" in text:
        return text.split("答案是")[1].strip().split("\n\n")[0].strip()
    numbers = re.findall(r"-?\d*\.?\d+", text.replace(",", ""))
    return numbers[-1] if numbers else ""


def extract_answer(text: str, benchmark: str) -> str:
    """The harness's `extract_answer`: the raw span, trimmed, normalised once ("" for an empty box)."""
    raw = raw_answer(text)
    if raw is None:
        return ""
    pred = re.sub(r"\n\s*", "", raw)
    if pred[:1] == ":":
        pred = pred[1:]
    for end in (".", "/"):
        if pred[-1:] == end:
            pred = pred[:-1]
    return strip_string(pred, keep_units=benchmark in KEEP_UNITS)


def response_text(response: str) -> str:
    """The response as the harness grades it: stripped and cut at its first stop word."""
    text = response.strip()
    for stop in STOP_WORDS:
        if stop in text:
            text = text.split(stop)[0].strip()
    return text


def extract(response: str, benchmark: str = "math500") -> str:
    """The harness's prediction for one response: `extract_answer`, then `strip_string` once more."""
    check_benchmark(benchmark)
    return strip_string(extract_answer(response_text(response), benchmark), keep_units=benchmark in KEEP_UNITS)


def _relations(text: str) -> str:
    return text.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")


def gold_answer(gold: str | Sequence[str], benchmark: str = "math500") -> str:
    """The harness's normalised gold answer for a benchmark.

    MATH500: the gold is a solution and its last box is read, normalised once (the harness re-reads
    its gold from the solution when it scores). Minerva: the same, keeping units. A gold without
    "boxed" is taken as the answer itself. OlympiadBench: the first item of `final_answer` without
    its "$". AIME and AMC: the answer as given. Those last two are normalised twice, as the harness
    does (once when it loads the data, once when it scores).
    """
    check_benchmark(benchmark)
    if not isinstance(gold, str):
        if not gold:
            raise ValueError(f"{benchmark}: empty gold answer list")
        gold = str(gold[0]) if benchmark in LIST_GOLD else ", ".join(str(g) for g in gold)
    if benchmark in SOLUTION_GOLD:
        keep_units = benchmark in KEEP_UNITS
        answer = extract_answer(gold, benchmark) if "boxed" in gold else strip_string(gold, keep_units=keep_units)
        return _relations(answer) if keep_units else answer
    if benchmark in LIST_GOLD:
        gold = gold.strip("$")
    return strip_string(strip_string(gold))


def check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"the harness rule knows no benchmark {benchmark!r} (known: {', '.join(BENCHMARKS)})")


def choice_letter(response: str) -> str:
    """The harness's multiple-choice reading of a response (used when the gold is a letter A-E)."""
    text = response.strip("\n")
    triggers = ("choice is", "answer is")
    if any(text.count(t) > 1 for t in triggers):
        text = text.split("\n\n")[0]
    parts = re.split("|".join(triggers), text)
    after_trigger = len(parts) > 1
    if after_trigger:
        text = parts[-1]
    text = text.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    letters = re.findall(r"\b(A|B|C|D|E)\b", text.upper())
    candidates = letters or [text.strip().strip(".")]
    pred = str(candidates[0] if after_trigger else candidates[-1])
    return pred.rstrip(".").rstrip("/")


def adjust_for_choice(pred: str, gold: str, response: str) -> str:
    """The harness re-reads the prediction when the gold is a choice letter (or letters)."""
    letters = ("A", "B", "C", "D", "E")
    if gold in letters and pred not in letters:
        return choice_letter(response)
    if all(c in letters for c in gold) and not all(c in letters for c in pred):
        return "".join(c for c in pred if c in letters)
    return pred
