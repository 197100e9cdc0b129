"""String normalisation and the exact numeric comparison of the fast path."""

from __future__ import annotations

from fractions import Fraction

import pytest

from oneshot_rlvr.reward import normalize as nz
from oneshot_rlvr.reward.grade import fast_verdict


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (r"\dfrac{1}{9}", r"\frac{1}{9}"),
        (r"\left( 1, 2 \right]", "(1,2]"),
        (r"900,\!000,\!000", "900000000"),
        ("10{,}000", "10000"),
        (r"11,\! 111,\! 111,\! 100", "11111111100"),
        ("14 {, }916", "14916"),
        (r"3\!,250", "3250"),
        ("32, 349", "32,349"),  # a comma and a space separate two numbers
        (r"(1,\! 2)", "(1,2)"),  # not a thousands group: one digit follows
        (r"1,\!2345", "1,2345"),  # nor four
        ("1,000", "1000"),
        (r"48^\circ", "48"),
        (r"48^{\circ}", "48"),
        (r"100\text{ square units}", "100"),
        ("12 inches", "12"),
        (r"24\text{ cm}^2", "24"),
        (r"\$18.90", "18.90"),
        ("x = 3", "3"),
        ("f(x) = x^2", "x^2"),
        ("$5$", "5"),
        (r"\frac12", r"\frac{1}{2}"),
        (r"\frac1{2}", r"\frac{1}{2}"),
        (r"\frac{1}2", r"\frac{1}{2}"),
        (r"3\sqrt2", r"3\sqrt{2}"),
        ("12 3/5", r"12\frac{3}{5}"),
        (r"\text{(C)}", "(C)"),
        ("+7", "7"),
        (r"\varnothing", r"\emptyset"),
        (r"2 \leq x", r"2\le x"),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    ],
)
def test_normalize_key(text: str, key: str) -> None:
    assert nz.normalize(text).key == key


def test_normalize_keeps_meaning_it_cannot_drop() -> None:
    assert nz.normalize("a = 2, b = 3").key == "a=2,b=3"  # several assignments stay
    assert nz.normalize("x + y = 5").key == "x+y=5"  # an equation is not an assignment
    assert nz.normalize(r"f \circ g").key == r"f\circ g"  # composition is not a degree sign
    assert nz.normalize("4t").key == "4t"  # a variable is not a unit
    assert nz.normalize(r"25\%").percent and nz.normalize(r"25\%").key == "25"


@pytest.mark.parametrize(
    ("key", "value", "exact"),
    [
        ("12", Fraction(12), True),
        ("12.80", Fraction(64, 5), False),
        ("-.5", Fraction(-1, 2), False),
        (r"-\frac{3}{4}", Fraction(-3, 4), True),
        (r"\frac{-3}{4}", Fraction(-3, 4), True),
        ("3/4", Fraction(3, 4), True),
        (r"2\frac{1}{2}", Fraction(5, 2), True),
        (r"-2\frac{1}{2}", Fraction(-5, 2), True),
        (r"6.02\times10^{23}", Fraction(602) * 10**21, False),
        ("1.5e-4", Fraction(3, 20000), False),
        ("10^{6}", Fraction(10**6), True),
        (r"0.1\overline{6}", Fraction(1, 6), True),
        (r"0.\overline{142857}", Fraction(1, 7), True),
    ],
)
def test_parse_number(key: str, value: Fraction, exact: bool) -> None:
    assert nz.parse_number(key) == (value, exact)


@pytest.mark.parametrize(
    "key", ["x", r"\frac{1}{0}", "1/0", r"2\frac{5}{3}", "10^{100000}", r"\sqrt{2}", "1" * 300, ""]
)
def test_parse_number_leaves_the_rest_to_sympy(key: str) -> None:
    assert nz.parse_number(key) is None


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        (r"\frac{1}{3}", "0.333333", True),  # within one part in a million
        (r"\frac{1}{3}", "0.3333", False),
        ("12.8", "12.80", True),
        ("12.8", "12.79", False),
        (r"25\%", "0.25", True),
        ("0.25", r"25\%", True),
        ("25", "0.25", False),  # no percent sign: no rescaling
        ("1000000", r"10^{6}", True),
        ("x", "1", None),
    ],
)
def test_numbers_match(gold: str, pred: str, expected: bool | None) -> None:
    assert nz.numbers_match(nz.normalize(gold), nz.normalize(pred)) is expected


@pytest.mark.parametrize(
    ("gold", "answer", "verdict"),
    [
        ("420", "420", True),
        (r"\text{(C)}", r"\textbf{(C) }12", True),
        (r"\text{(C)}", "12", False),
        (r"\text{4:30 p.m.}", "4:30", True),
        (r"\text{4:30 p.m.}", r"4:30\text{ a.m.}", False),
        (r"\text{Evelyn}", "evelyn", True),
        ("2x+3", "3+2x", None),  # symbolic: sympy decides
        ("5", "", False),
    ],
)
def test_fast_verdict(gold: str, answer: str, verdict: bool | None) -> None:
    assert fast_verdict(gold, answer) is verdict
