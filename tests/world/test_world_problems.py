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


def test_split_is_a_property_of_the_text_alone() -> None:
    for p in generate_problems("val", 20, seed=7):
        assert split_of(p.question) == "val" == p.split
    # Any seed generating the same question would put it in the same split.
    assert split_of("What is 2 + 2?") == split_of("What is 2 + 2?")


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


def test_answers_solve_the_questions() -> None:
    for p in generate_problems("test", 300, seed=5):
        q, x = p.question, int(p.answer)
        if p.family == "arithmetic":
            expr = re.search(r"(?:Compute|What is|Evaluate|Calculate) (.+?)[.?]$", q)
            assert expr and _value(expr.group(1)) == x
        elif p.family == "linear":
            eq = re.search(r"([\dx()+\- ]+ = \d+)", q)
            assert eq, q
            left, right = eq.group(1).split(" = ")
            left = re.sub(r"(\d)\(", r"\1*(", re.sub(r"(\d)x", r"\1*x", left)).replace("x", str(x))
            assert _value(left) == int(right), q
        elif p.family == "remainder":
            m = re.search(r"(\d+)(?: ([*+]) (\d+))? (?:is )?divided by (\d+)", q)
            assert m, q
            n = int(m.group(1)) if not m.group(2) else _value(f"{m.group(1)} {m.group(2)} {m.group(3)}")
            assert n % int(m.group(4)) == x, q


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
