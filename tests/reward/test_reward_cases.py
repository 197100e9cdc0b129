"""The hand-written case table: every case gets its expected verdict for the expected reason.

A False verdict counts only when it was honestly obtained: "unequal" (or the case's own reason), never
a timeout or an error that happened to say False.
"""

from __future__ import annotations

import pytest
from reward_case_table import CASES, Case

from oneshot_rlvr.reward import Grade, explain_batch

# Generous per-comparison limit: on a loaded machine a slow simplify must not turn into a wrong verdict.
_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def verdicts() -> dict[Case, Grade]:
    graded: dict[Case, Grade] = {}
    for boxed in (False, True):
        cases = [c for c in CASES if c.require_boxed is boxed]
        results = explain_batch(
            [c.gold for c in cases], [c.prediction for c in cases], require_boxed=boxed, timeout=_TIMEOUT
        )
        graded.update(zip(cases, results, strict=True))
    return graded


def test_table_is_large_and_balanced() -> None:
    assert len(CASES) >= 200
    positives = sum(c.expected for c in CASES)
    assert 0.3 < positives / len(CASES) < 0.8
    assert {c.style for c in CASES} >= {"MATH", "AIME", "AMC", "Minerva", "OlympiadBench"}
    assert len(set(CASES)) == len(CASES), "duplicate cases"


def test_agreement_with_expected_verdicts(verdicts: dict[Case, Grade]) -> None:
    wrong = [c for c in CASES if verdicts[c].ok != c.expected]
    agreement = 1 - len(wrong) / len(CASES)
    print(f"case table agreement: {len(CASES) - len(wrong)}/{len(CASES)} = {agreement:.1%}")
    assert agreement >= 0.99, wrong


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.style}:{c.gold[:20]}|{c.prediction[-24:]}")
def test_case(case: Case, verdicts: dict[Case, Grade]) -> None:
    grade = verdicts[case]
    assert grade.ok is case.expected, grade
    assert grade.reason.value == case.reason, grade


def test_no_case_is_decided_by_a_timeout_or_an_error(verdicts: dict[Case, Grade]) -> None:
    undecided = {c: g.reason.value for c, g in verdicts.items() if g.reason.value in ("timeout", "deadline", "error")}
    assert undecided == {}
