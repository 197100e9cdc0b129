"""pass@k, per-benchmark metrics and self-reflection counts against hand-computed values."""

from __future__ import annotations

import math

import pytest

from oneshot_rlvr.eval.analysis import has_boxed, last_boxed, reflection_counts, reflection_summary
from oneshot_rlvr.eval.metrics import benchmark_average, mean_pass_at_k, pass_at_k, pass_ks, summarize


def test_pass_at_k_matches_the_binomial_formula_by_hand():
    # n=8, c=3: pass@2 = 1 - C(5,2)/C(8,2) = 1 - 10/28; pass@4 = 1 - C(5,4)/C(8,4) = 1 - 5/70.
    assert pass_at_k(8, 3, 2) == pytest.approx(18 / 28)
    assert pass_at_k(8, 3, 4) == pytest.approx(65 / 70)
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    assert pass_at_k(8, 3, 8) == 1.0  # fewer than 8 wrong samples: any 8 include a right one
    assert pass_at_k(8, 0, 4) == 0.0
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6


def test_pass_at_k_stays_finite_where_binomials_overflow_floats():
    n, c, k = 2000, 7, 100
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)  # exact integers, then one division
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_reported_k_values_are_powers_of_two_and_n():
    assert pass_ks(8) == [1, 2, 4, 8]
    assert pass_ks(1) == [1]
    assert pass_ks(6) == [1, 2, 4, 6]


def _record(problem, sample, correct, strict=False, boxed=False, tokens=10, reason="eos", reflection=None):
    return {"problem_index": problem, "sample": sample, "correct": correct, "strict_correct": strict,
            "boxed": boxed, "tokens": tokens, "finish_reason": reason, "reflection": reflection or {}}


def test_summarize_hand_made_records():
    # Problem 0: 3 of 4 right (2 strictly); problem 1: 0 of 4 right.
    records = [
        _record(0, 0, True, strict=True, boxed=True, tokens=10, reflection={"wait": 2}),
        _record(0, 1, True, strict=True, boxed=True, tokens=20),
        _record(0, 2, True, strict=False, boxed=False, tokens=30, reason="length"),
        _record(0, 3, False, boxed=True, tokens=40, reflection={"verify": 1, "wait": 1}),
        _record(1, 0, False, tokens=50, reason="length"),
        _record(1, 1, False, tokens=60),
        _record(1, 2, False, tokens=70),
        _record(1, 3, False, tokens=80),
    ]
    m = summarize(records)
    assert m["problems"] == 2 and m["responses"] == 8 and m["samples_per_problem"] == 4
    assert m["accuracy"] == pytest.approx(3 / 8)
    assert m["avg@4"] == pytest.approx(3 / 8)
    assert m["strict_accuracy"] == pytest.approx(2 / 8)
    assert m["pass@1"] == pytest.approx((3 / 4 + 0) / 2)
    assert m["pass@2"] == pytest.approx((1 - 0 / 6 + 0) / 2)  # 1 wrong of 4: C(1,2) = 0 -> pass@2 = 1
    assert m["pass@4"] == pytest.approx(0.5)
    assert "pass@8" not in m
    assert m["format_rate"] == pytest.approx(3 / 8)
    assert m["mean_response_tokens"] == pytest.approx(45.0)
    assert m["truncation_rate"] == pytest.approx(2 / 8)
    refl = m["reflection"]
    assert refl["words"]["wait"] == {"total": 3, "per_response": 3 / 8, "response_rate": 2 / 8}
    assert refl["words"]["verify"]["total"] == 1
    assert refl["any_rate"] == pytest.approx(2 / 8)


def test_pass_at_k_averages_over_problems():
    groups = [[True, False, False, False], [True, True, False, False]]
    # pass@2: 1 - C(3,2)/C(4,2) = 1/2 and 1 - C(2,2)/C(4,2) = 5/6.
    assert mean_pass_at_k(groups, 2) == pytest.approx((1 / 2 + 5 / 6) / 2)


def test_benchmark_average_is_unweighted_and_says_when_incomplete():
    per = {"math500": {"accuracy": 0.7}, "aime24": {"accuracy": 0.1}, "arc_easy": {"accuracy": 0.9}}
    avg = benchmark_average(per, ["math500", "aime24"])
    assert avg == {"accuracy": pytest.approx(0.4), "benchmarks": ["math500", "aime24"], "complete": True}
    partial = benchmark_average(per, ["math500", "aime24", "amc23"])
    assert partial["complete"] is False and partial["accuracy"] == pytest.approx(0.4)
    assert benchmark_average({}, ["math500"])["accuracy"] is None


def test_reflection_words_whole_words_case_insensitive():
    text = ("Wait, let me recheck. WAIT. I will verify and double-check, then re-evaluate and rethink; "
            "Recalculate! Verified, waiting, rechecked, double-checking, re-verify and awaited do not count.")
    counts = reflection_counts(text)
    assert counts == {"rethink": 1, "recheck": 1, "recalculate": 1, "re-evaluate": 1, "double-check": 1,
                      "verify": 1, "wait": 2}
    assert reflection_counts("") == dict.fromkeys(counts, 0)


def test_reflection_summary_of_nothing_is_zero():
    s = reflection_summary([])
    assert s["responses"] == 0 and s["any_rate"] == 0.0 and s["words"]["wait"]["total"] == 0


def test_boxed_detection_balances_braces():
    assert last_boxed(r"so \boxed{\frac{1}{2}} and then \boxed{3}") == "3"
    assert last_boxed(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{\frac{1}{2}") is None  # cut off mid-answer
    assert has_boxed(r"The answer is \boxed {7}.") and not has_boxed("The answer is 7.")
