"""The evaluation harness's equality rule (Qwen2.5-Math `grader.math_equal`), in this project's code.

In order: equal strings (case-insensitive); a choice letter; two numbers within a relative 1e-4 of
each other, where the gold may also be taken x100 or /100 (25 matches a gold of 0.25, and 0.25 a gold
of 25); then, for anything else, bracket-stripped string equality, element-wise tuples and matrices,
equations, and last a sympy comparison (direct, simplified difference, numeric value within 1e-4).

`math_equal` takes the sympy step as an argument: the parent process passes `needs_sympy`, which
stops at the first comparison that would need sympy, so that numeric answers are decided without a
worker; workers pass `symbolic_equal`. Parsing differs from the harness in one way: LaTeX is read by
math-verify's `latex2sympy2_extended` (antlr 4.13) where the harness uses sympy's `parse_latex` and
`latex2sympy2` (antlr 4.11 and 4.7), which cannot share one environment with math-verify; and a plain
expression goes to sympy's `parse_expr` (which evaluates Python) only when it cannot reach Python
objects (no attribute access, no underscores, no quotes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

Symbolic = Callable[[str, str], bool]

_CHOICES = ("A", "B", "C", "D", "E")
_MATRIX_BEGIN = ("\\begin{pmatrix}", "\\begin{bmatrix}")
_MATRIX_END = ("\\end{pmatrix}", "\\end{bmatrix}")
_SAFE_EXPR = re.compile(r"[0-9A-Za-z+\-*/^()\[\]{},.= <>!|]*")
_ATTRIBUTE = re.compile(r"\.\s*[A-Za-z]")
_CALL = re.compile(r"([A-Za-z]{2,})\s*\(")
# Functions a plain-text answer may call; any other name followed by "(" keeps the text unparsed
# (sympy's namespace also holds plot(), preview() and friends, which reach outside the process).
_FUNCTIONS = frozenset({
    "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "sinh", "cosh", "tanh",
    "log", "ln", "exp", "Abs", "abs", "factorial", "binomial", "floor", "ceiling", "gcd", "lcm", "Rational",
})


class NeedsSympy(Exception):
    """Raised by `needs_sympy`: this comparison has reached the harness's sympy step."""


_RATIONAL = re.compile(r"(-?)\\frac\{(\d{1,12})\}\{(\d{1,12})\}|-?\d{1,12}")


def _rational(text: str) -> Fraction | None:
    match = _RATIONAL.fullmatch(text)
    if match is None:
        return None
    if match.group(2) is None:
        return Fraction(int(text))
    numerator, denominator = int(match.group(2)), int(match.group(3))
    if denominator == 0:
        return None
    return Fraction(-numerator if match.group(1) else numerator, denominator)


def needs_sympy(prediction: str, reference: str) -> bool:
    """The sympy step where it can be done without sympy, else `NeedsSympy`.

    Two plain fractions (or a fraction and an integer) are decided here, as sympy would decide them:
    equal rationals, or values within the harness's relative 1e-4.
    """
    a, b = _rational(prediction), _rational(reference)
    if a is None or b is None:
        raise NeedsSympy
    return a == b or numbers_close(float(a), float(b))


def parse_number(text: str) -> float | None:
    """A number as the harness reads it: commas dropped, Python's float(), or a percentage / 100."""
    text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("%"):
        text = text[:-1].removesuffix("\\")
        try:
            return float(text) / 100
        except ValueError:
            pass
    return None


def numbers_close(prediction: float, reference: float) -> bool:
    return math.isclose(reference, prediction, rel_tol=1e-4)


def _choice_clean(pred: str) -> str:
    pred = pred.strip("\n").rstrip(".").rstrip("/").strip(" ").lstrip(":")
    letters = re.findall(r"\b(A|B|C|D|E)\b", pred.upper())
    return (letters[-1] if letters else pred.strip().strip(".")).rstrip(".").rstrip("/")


def _to_pmatrix(reference: str) -> str:
    rows = re.findall(r"\{.*,.*\}", reference.strip())
    return ", ".join("\\begin{pmatrix}" + m.strip("{}").replace(",", "\\") + "\\end{pmatrix}" for m in rows)


def _is_matrix(text: str) -> bool:
    return text.startswith(_MATRIX_BEGIN) and text.endswith(_MATRIX_END)


def _matrix_rows(text: str) -> list[str]:
    body = text[len("\\begin{pmatrix}") : -len("\\end{pmatrix}")]
    return [line.strip() for line in body.split("\\\\") if line.strip()]


def math_equal(prediction: str, reference: str, symbolic: Symbolic) -> bool:
    """Whether the harness counts the prediction equal to the reference (both already normalised)."""
    if prediction.strip().lower() == reference.strip().lower():
        return True
    if reference in _CHOICES and _choice_clean(prediction) == reference:
        return True
    pred_number, ref_number = parse_number(prediction), parse_number(reference)
    if pred_number is not None and ref_number is not None:
        golds = (ref_number / 100, ref_number, ref_number * 100)
        return any(numbers_close(pred_number, g) for g in golds)
    if not prediction:
        return False
    return _structured_equal(prediction.strip(), reference.strip(), symbolic)


def _structured_equal(prediction: str, reference: str, symbolic: Symbolic) -> bool:
    if "pmatrix" in prediction and "pmatrix" not in reference:
        reference = _to_pmatrix(reference)
    pred_str, ref_str = prediction, reference
    if (prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        pred_str, ref_str = pred_str.strip("[]()"), ref_str.strip("[]()")
    for bracket in "{}()":
        pred_str, ref_str = pred_str.replace(bracket, ""), ref_str.replace(bracket, "")
    if pred_str.lower() == ref_str.lower():
        return True
    if _tuples_equal(prediction, reference, symbolic) or _matrices_equal(prediction, reference, symbolic):
        return True
    if _equations_equal(prediction, reference, symbolic):
        return True
    return symbolic(prediction, reference)


def _tuples_equal(prediction: str, reference: str, symbolic: Symbolic) -> bool:
    """(a, b) against (c, d) (or brackets): element by element under the whole rule."""
    bracketed = re.compile(r"(\(|\[).+(\)|\])")
    if not (bracketed.match(prediction) and bracketed.match(reference)):
        return False
    pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
    return len(pred_parts) == len(ref_parts) and all(
        math_equal(p, r, symbolic) for p, r in zip(pred_parts, ref_parts, strict=True)
    )


def _matrices_equal(prediction: str, reference: str, symbolic: Symbolic) -> bool:
    if not (_is_matrix(prediction) and _is_matrix(reference)):
        return False
    pred_rows, ref_rows = _matrix_rows(prediction), _matrix_rows(reference)
    if len(pred_rows) != len(ref_rows):
        return False
    for pred_row, ref_row in zip(pred_rows, ref_rows, strict=True):
        pred_cells, ref_cells = pred_row.split("&"), ref_row.split("&")
        if len(pred_cells) != len(ref_cells):
            return False
        if not all(math_equal(p, r, symbolic) for p, r in zip(pred_cells, ref_cells, strict=True)):
            return False
    return True


def _equations_equal(prediction: str, reference: str, symbolic: Symbolic) -> bool:
    """Two equations: lhs - rhs equal up to sign. One short "x = v" against a value: v alone."""
    if prediction.count("=") == 1 and reference.count("=") == 1:
        left, right = prediction.split("=")
        pred = f"{left.strip()} - ({right.strip()})"
        left, right = reference.split("=")
        ref = f"{left.strip()} - ({right.strip()})"
        return symbolic(pred, ref) or symbolic(f"-({pred})", ref)
    if prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:
        return math_equal(prediction.split("=")[1], reference, symbolic)
    if reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:
        return math_equal(prediction, reference.split("=")[1], symbolic)
    return False


def _parse(text: str) -> Any:
    """LaTeX (math-verify's parser), else a plain expression, else the string itself (as the harness)."""
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig, NormalizationConfig, latex2sympy

    # As the harness's parsers: no clean-up of the LaTeX first (math-verify's would read "10{,}000",
    # which they cannot), case kept, and 1\frac{1}{2} read as a product.
    raw = NormalizationConfig(basic_latex=False, units=False, malformed_operators=False, nits=False,
                              boxed="none", equations=False)
    config = ConversionConfig(interpret_as_mixed_fractions=False, lowercase_symbols=False)
    for candidate in dict.fromkeys((text.replace("\\\\", "\\"), text)):
        try:
            return latex2sympy(candidate, normalization_config=raw, conversion_config=config)
        except Exception:  # any parser failure means "try the next reading"
            pass
    for candidate in dict.fromkeys((text.replace("\\\\", "\\"), text)):
        if _plain_and_safe(candidate):
            try:
                from sympy.parsing.sympy_parser import parse_expr

                return parse_expr(candidate)
            except Exception:
                pass
    return text


def _plain_and_safe(text: str) -> bool:
    """Whether sympy's `parse_expr` (which runs Python's eval) can read `text` without reaching Python
    objects: no attribute access, underscores or quotes, and calls only to plain math functions."""
    if not _SAFE_EXPR.fullmatch(text) or _ATTRIBUTE.search(text):
        return False
    return all(name in _FUNCTIONS for name in _CALL.findall(text))


def symbolic_equal(prediction: str, reference: str) -> bool:
    """The harness's sympy step: same printout or ==, simplify(a - b) == 0, equal |lhs - rhs|, equal
    numeric values within 1e-4, equal matrices rounded to 3 places. Any error means "not this way".

    Where an answer stays text (no parser reads it), only the first check runs: the harness's later
    checks would hand the text to sympify, that is to eval().
    """
    a, b = _parse(prediction), _parse(reference)
    if isinstance(a, str) or isinstance(b, str):
        return _same(a, b)
    for check in (_same, _simplified, _equation, _numeric, _matrix):
        try:
            if check(a, b):
                return True
        except Exception:  # as in the harness: a failing check is a "no"
            pass
    return False


def _same(a: Any, b: Any) -> bool:
    return bool(str(a) == str(b) or a == b)


def _simplified(a: Any, b: Any) -> bool:
    from sympy import simplify

    return bool(a.equals(b) or simplify(a - b) == 0)


def _equation(a: Any, b: Any) -> bool:
    return bool(abs(a.lhs - a.rhs).equals(abs(b.lhs - b.rhs)))


def _numeric(a: Any, b: Any) -> bool:
    from sympy import N

    return numbers_close(float(N(a)), float(N(b)))


def _matrix(a: Any, b: Any) -> bool:
    if a.shape != b.shape:
        return False
    return bool(a.applyfunc(lambda x: round(x, 3)).equals(b.applyfunc(lambda x: round(x, 3))))
