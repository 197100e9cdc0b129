"""Final-answer extraction: boxes, "the answer is", last number, bare answers, bad input."""

from __future__ import annotations

import pytest

from oneshot_rlvr.reward import extract_answer
from oneshot_rlvr.reward.extract import answer_for_grading, box_group, last_boxed, looks_bare


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


def test_extraction_handles_huge_and_nested_input() -> None:
    # the scans are linear and never recurse: these finish (each in milliseconds) without a
    # RecursionError, and give the answers a person would read
    cases = [
        "word 12 " * 150_000,  # about 1 MB with many numbers
        "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
        "\\boxed{" + "{" * 10_000,  # never closes
        "\\boxed{}" * 50_000,  # many empty boxes
        "x" * 1_000_000 + "\\boxed{3}",
        "\\boxed{1}" * 50_000,  # one long run of side-by-side boxes
    ]
    results = [extract_answer(c) for c in cases]
    assert results[0] == "12"
    assert results[1] == "{" * 10_000 + "1" + "}" * 10_000
    assert results[2] is None
    assert results[3] is None
    assert results[4] == "3"
    assert results[5] == "1"  # the same box repeated is one answer


@pytest.mark.parametrize(
    ("text", "group", "last"),
    [
        (r"\boxed{1}, \boxed{2}", "1, 2", "2"),
        (r"$\boxed{1}\boxed{2}$", "1, 2", "2"),
        (r"\boxed{(2,2)} \text{ and } \boxed{(6,2)}", "(2,2), (6,2)", "(6,2)"),
        (r"$x = \boxed{-3}$ or $x = \boxed{3}$", "-3, 3", "3"),
        ("\\[\n\\boxed{1},\\quad \\boxed{2}\n\\]", "1, 2", "2"),
        (r"\boxed{5} \boxed{5}", "5", "5"),
        (r"\boxed{1} then \boxed{2}", "2", "2"),  # prose between: a correction, not a list
        (r"\boxed{104}. Wait, it is \boxed{106}", "106", "106"),
        (r"\boxed{1}, \boxed{}", "1", "1"),  # an empty last box is skipped, as before
        (r"\boxed{1}, \boxed{2", None, None),  # a cut-off last box is no answer
        (r"\boxed{\boxed{5}}", "5", "5"),
    ],
)
def test_box_group(text: str, group: str | None, last: str | None) -> None:
    assert box_group(text) == group
    assert last_boxed(text) == last
    assert extract_answer(text, mode="lenient") == group
    assert extract_answer(text, mode="boxed") == last  # the training rule reads the last box only


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("Final Answer: The largest $n$ is 34.", "34"),
        ("**Final Answer**\nThe largest value of $n$ is $34$.", "34"),
        ("**Answer:** 12", "12"),
        ("Answer: there are 12 ways.", "12 ways"),
        ("The answer is not 34; it is 35.", "35"),
        ("Answer: 3 apples and 4 pears, 7 in all", "3 apples and 4 pears, 7 in all"),  # no single value
        ("所以答案是 $5$。", "5"),
        ("因此，答案为：12。后面还有 7 个字", "12"),
        ("答えは5です", "5"),
        ("Donc la réponse est 2,5.", "2.5"),
        ("Réponse : 0,125", "0.125"),
        ("Réponse : 1,250", "1,250"),  # three digits after the comma: left as written
        ("La respuesta es 42.", "42"),
        ("Die Antwort lautet 7.", "7"),
        ("Ответ: 42", "42"),
        ("The answer is 2,5.", "2,5"),  # English: a comma is no decimal point
        (r"the total is 11,\! 111 coins and more text here", "11111"),
        (r"so there were 10{,}000 of them in the end", "10000"),
        ("We get 1,2345 here and there", "2345"),  # not a thousands group
    ],
)
def test_stated_answers(response: str, answer: str) -> None:
    assert answer_for_grading(response, require_boxed=False) == answer
    assert answer_for_grading(response, require_boxed=True) is None
