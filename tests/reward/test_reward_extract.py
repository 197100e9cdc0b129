"""Final-answer extraction: boxes, "the answer is", last number, bare answers, bad input."""

from __future__ import annotations

import time

import pytest

from oneshot_rlvr.reward import extract_answer
from oneshot_rlvr.reward.extract import answer_for_grading, last_boxed, looks_bare


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"\boxed{\left\{ 1 \right\}}", r"\left\{ 1 \right\}"),
        (r"\fbox{7}", "7"),
        (r"\boxed{3} and \fbox{4}", "4"),
        (r"\boxed 5$ and more", "5"),
        (r"\boxed{ 12 }", "12"),
        (r"\boxed{\text{(C)}}", r"\text{(C)}"),
        (r"\boxed{5} and then an empty \boxed{}", "5"),
        (r"\boxed{5} and a blank \boxed{  }", "5"),
        (r"\boxed{2} and then \boxed{3", None),  # a truncated last box is no answer
        (r"\boxed{}", None),
        ("no box at all", None),
        (r"\boxedx{3}", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("response", "lenient", "boxed"),
    [
        (r"Thus the answer is \boxed{42}.", "42", "42"),
        ("The answer is $\\frac{3}{4}$. Done.", r"\frac{3}{4}", None),
        ("so the final answer is: 17.", "17", None),
        ("The answer is 5.\nLater text mentions 7.", "5", None),
        ("Answer: 12", "12", None),
        ("We get 1,000 apples and 23.5 pears", "23.5", None),
        ("the total is 1,234,567", "1234567", None),
        ("it drops to -3 degrees", "-3", None),
        ("no numbers here", None, None),
        (r"answer is 3 but \boxed{4}", "4", "4"),  # the box comes first in the harness order
        ("it is 12 so \\boxed{12", None, None),  # cut off inside the box: no answer, not "the last number"
        ("", None, None),
        (None, None, None),
    ],
)
def test_extract_answer_follows_the_harness_order(response: str | None, lenient: str | None, boxed: str | None) -> None:
    assert extract_answer(response, mode="lenient") == lenient
    assert extract_answer(response, mode="boxed") == boxed


def test_extract_answer_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="response must be str"):
        extract_answer(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        extract_answer("x", mode="strict")  # type: ignore[arg-type]


def test_bytes_are_decoded_leniently() -> None:
    assert extract_answer(b"\\boxed{7} \xff\xfe") == "7"


@pytest.mark.parametrize(
    ("response", "bare"),
    [
        ("2x + 3", True),
        ("x = 5", True),
        ("4:30 p.m.", True),
        ("100 square units", True),
        (r"\text{Evelyn}", True),
        ("$\\frac{3}{4}$", True),
        ("The result is 7", False),
        ("Thus $p + q = 113$", False),
        ("line one\nline two", False),
        ("x" * 300, False),
    ],
)
def test_looks_bare(response: str, bare: bool) -> None:
    assert looks_bare(response) is bare


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("2x + 3", "2x + 3"),  # a bare answer is taken whole, not as its last number
        ("$x = 5$", "x = 5"),
        ("Therefore, the probability is $\\frac{3}{4}$.", r"\frac{3}{4}"),
        ("We computed it. The total is 12 coins and 3 boxes", "3"),
        (r"the answer is 3 and \boxed{4}", "4"),
    ],
)
def test_answer_for_grading(response: str, answer: str) -> None:
    assert answer_for_grading(response, require_boxed=False) == answer


def test_boxed_grading_needs_a_box() -> None:
    assert answer_for_grading("the answer is 4", require_boxed=True) is None
    assert answer_for_grading(r"\boxed{4}", require_boxed=True) == "4"


def test_extraction_is_linear_on_huge_and_nested_input() -> None:
    cases = [
        "word 12 " * 150_000,  # about 1 MB with many numbers
        "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
        "\\boxed{" + "{" * 10_000,  # never closes
        "\\boxed{}" * 50_000,  # many empty boxes
        "x" * 1_000_000 + "\\boxed{3}",
    ]
    start = time.perf_counter()
    results = [extract_answer(c) for c in cases]
    assert time.perf_counter() - start < 5.0  # generous: each is milliseconds
    assert results[0] == "12"
    assert results[1] == "{" * 10_000 + "1" + "}" * 10_000
    assert results[2] is None
    assert results[3] is None
    assert results[4] == "3"
