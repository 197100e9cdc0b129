"""The world's problem generator: determinism, disjoint splits, and solutions that are actually right."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.world.problems import FAMILIES, draw_problem, generate_problems, split_of


def _value(expr: str) -> float:
    # Steps are written with +, -, *, / (must divide exactly) and ÷ (whole-number division).
    assert re.fullmatch(r"[\d +\-*/÷()]+", expr), expr
    return float(eval(expr.replace("÷", "//")))


def test_same_seed_same_problems_other_seed_other_problems() -> None:
    a = generate_problems("test", 40, seed=0)
    assert a == generate_problems("test", 40, seed=0)
    b = generate_problems("test", 40, seed=1)
    assert [p.question for p in a] != [p.question for p in b]


def test_splits_never_share_a_question() -> None:
    questions = {s: {p.question for p in generate_problems(s, 300, seed=3)} for s in ("test", "val", "train")}
    assert all(len(q) == 300 for q in questions.values())  # distinct within a split too
    assert not questions["test"] & questions["val"]
    assert not questions["test"] & questions["train"]
    assert not questions["val"] & questions["train"]
    for split, qs in questions.items():
        assert {split_of(q) for q in qs} == {split}


# Buckets worked out with coreutils, `printf '%s' "$q" | sha256sum`: the first 8 hex digits mod 100; test takes
# buckets 0-4, val 5-9, train 10-14, pretrain 15-99. A stable hash of the text, so the same in every process,
# seed and release (Python's own hash() would differ between processes).
SPLIT_OF_TEXT = [
    ("What is 4 + 8?", 0, "test"), ("What is 7 + 2?", 4, "test"),
    ("What is 29 + 2?", 5, "val"), ("What is 8 + 8?", 9, "val"),
    ("What is 1 + 3?", 10, "train"), ("What is 2 + 8?", 14, "train"),
    ("What is 31 + 6?", 15, "pretrain"), ("What is 2 + 2?", 75, "pretrain"), ("Compute 3 + 4 * 5.", 88, "pretrain"),
]


@pytest.mark.parametrize(("question", "bucket", "split"), SPLIT_OF_TEXT)
def test_split_is_a_property_of_the_text_alone(question: str, bucket: int, split: str) -> None:
    assert split_of(question) == split, bucket


def test_generated_problems_carry_the_split_of_their_text() -> None:
    for p in generate_problems("val", 20, seed=7):
        assert split_of(p.question) == "val" == p.split


def test_families_are_balanced_and_both_chain_lengths_appear() -> None:
    problems = generate_problems("test", 200)
    assert Counter(p.family for p in problems) == {f: 40 for f in FAMILIES}
    lengths = Counter(len(p.steps) for p in problems)
    assert set(lengths) == {2, 3}
    assert 0.45 < lengths[3] / 200 < 0.8


def test_every_step_computes_its_value_and_the_answer_is_the_last_one() -> None:
    for p in generate_problems("train", 300, seed=2):
        assert p.answer == str(p.steps[-1].value)
        for step in p.steps:
            assert _value(step.expr) == step.value, (p.question, step)
            assert f"= {step.value}" in step.careful()


def _solve_linear(q: str, x: int) -> bool:
    eq = re.search(r"([\dx()+\- ]+ = \d+)", q)
    assert eq, q
    left, right = eq.group(1).split(" = ")
    left = re.sub(r"(\d)\(", r"\1*(", re.sub(r"(\d)x", r"\1*x", left)).replace("x", str(x))
    return _value(left) == int(right)  # a linear equation with a nonzero slope: the one x that satisfies it


# Each family's question forms, solved from the text alone (regex groups -> the answer), not from the steps.
WORD_FORMS = {
    "buys packs": (r"(\w+) has (\d+) (\w+)\. \1 buys (\d+) packs with (\d+) \3 in each pack and then gives away "
                   r"(\d+) \3\. How many \3 does \1 have now\?",
                   lambda g: int(g[1]) + int(g[3]) * int(g[4]) - int(g[5])),
    "garden": (r"A garden has (\d+) rows with (\d+) plants in each row\. (\d+) plants die and then (\d+) new plants "
               r"are planted\. How many plants are in the garden now\?",
               lambda g: int(g[0]) * int(g[1]) - int(g[2]) + int(g[3])),
    "change": (r"(\w+) buys (\d+) boxes of (\w+) for (\d+) dollars each and pays with a (\d+) dollar note\. "
               r"How much change does \1 get\?", lambda g: int(g[4]) - int(g[1]) * int(g[3])),
    "pages": (r"(\w+) reads (\d+) pages a day for (\d+) days and then (\d+) more pages\. "
              r"How many pages is that in total\?", lambda g: int(g[1]) * int(g[2]) + int(g[3])),
}
FUNCTION_FORM = (r"Let f\(x\) = (\d+)x \+ (\d+)(?: and g\(x\) = (\d+)x \+ (\d+))?\. "
                 r"(?:What is|Find|Compute) ([fg()\d +]+)[.?]")


def _solve_word(q: str) -> tuple[str, int]:
    matches = [(form, solve(m.groups())) for form, (pattern, solve) in WORD_FORMS.items()
               if (m := re.fullmatch(pattern, q))]
    assert len(matches) == 1, q
    return matches[0]


def _solve_function(q: str) -> tuple[str, int]:
    m = re.fullmatch(FUNCTION_FORM, q)
    assert m, q
    a, b, c, d, asked = m.groups()

    def f(x: int) -> int:
        return int(a) * x + int(b)

    def g(x: int) -> int:
        assert c is not None, q  # g is only asked about when the question defines it
        return int(c) * x + int(d)

    form = re.sub(r"\d+", "n", asked)
    return form, eval(asked, {"__builtins__": {}}, {"f": f, "g": g})


def test_answers_solve_the_questions() -> None:
    forms: Counter[str] = Counter()
    for p in generate_problems("test", 300, seed=5):
        q, x = p.question, int(p.answer)
        if p.family == "arithmetic":
            expr = re.fullmatch(r"(?:Compute|What is|Evaluate|Calculate) ([\d +\-*()]+)[.?]", q)
            assert expr and _value(expr.group(1)) == x, q
            forms["arithmetic"] += 1
        elif p.family == "linear":
            assert _solve_linear(q, x), q
            forms["linear"] += 1
        elif p.family == "remainder":
            m = re.fullmatch(r"(?:What is|Find) the remainder (?:when|of) (\d+)(?: ([*+]) (\d+))? (?:is )?divided by "
                             r"(\d+)[.?]", q)
            assert m, q
            n = int(m.group(1)) if not m.group(2) else _value(f"{m.group(1)} {m.group(2)} {m.group(3)}")
            assert n % int(m.group(4)) == x, q
            forms["remainder"] += 1
        elif p.family == "word":
            form, answer = _solve_word(q)
            assert answer == x, q
            forms[f"word: {form}"] += 1
        else:
            assert p.family == "function", p.family
            form, answer = _solve_function(q)
            assert answer == x, q
            forms[f"function: {form}"] += 1
    # Every family, and every form of the two with several, was checked (60 problems of each family).
    assert set(forms) == {"arithmetic", "linear", "remainder", *(f"word: {w}" for w in WORD_FORMS),
                          "function: f(f(n))", "function: f(n) + f(n)", "function: g(f(n))"}, forms


def test_hand_computed_function_problem() -> None:
    # f(x) = 2x + 3: f(f(5)) = f(13) = 29, written in two steps.
    steps = None
    rng = random.Random(0)
    for _ in range(20_000):
        question, candidate = draw_problem(rng, "function")
        if question == "Let f(x) = 2x + 3. Find f(f(5)).":
            steps = candidate
            break
    assert steps is not None
    assert [s.value for s in steps] == [13, 29]
    assert steps[0].careful() == "f(5) = 2 * 5 + 3 = 13."


def test_bad_requests_name_the_problem() -> None:
    with pytest.raises(RlvrError, match="split"):
        generate_problems("holdout", 3)
    with pytest.raises(RlvrError, match="family"):
        draw_problem(random.Random(0), "geometry")
    with pytest.raises(RlvrError, match=">= 0"):
        generate_problems("test", -1)
