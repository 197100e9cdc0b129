"""Hostile responses under the harness rule: every call returns, a timeout is flagged and counts as
wrong, and nothing a response says is executed. No test measures time."""

from __future__ import annotations

from pathlib import Path

from oneshot_rlvr.reward import harness
from oneshot_rlvr.reward.harness_equal import _parse, symbolic_equal


def test_quadratic_normalisation_runs_out_of_time_in_a_worker() -> None:
    # 60,000 digits: the harness's "(\d+)\.0*([^\d])" clean-up is quadratic on them; in-process it
    # would hang the caller, so the answer goes to a worker and is cut off there.
    response = "\\boxed{" + "1" * 60_000 + "}"
    [result] = harness.grade_batch(["5"], [response], timeout=1.0)
    assert result == harness.HarnessVerdict(correct=False, answer=None, gold="5", timed_out=True)


def test_the_pool_keeps_grading_after_a_timeout() -> None:
    responses = ["\\boxed{" + "1" * 60_000 + "}", "\\boxed{x^2+1}", "\\boxed{7}"]
    results = harness.grade_batch(["5", "1+x^2", "7"], responses, timeout=1.0)
    assert [(r.correct, r.timed_out) for r in results] == [(False, True), (True, False), (True, False)]


def test_a_huge_power_is_bounded() -> None:
    [result] = harness.grade_batch(["1"], ["\\boxed{9^{9^{9^{9}}}}"], timeout=1.0)
    assert result.correct is False
    assert result.answer == "9^{9^{9^{9}}}"


def test_deep_braces_and_many_boxes_return() -> None:
    deep = "\\boxed{" + "{" * 5000 + "1"
    many = "\\boxed{1} " * 5000 + "\\boxed{2}"
    results = harness.grade_batch(["1", "2"], [deep, many], timeout=1.0)
    # the harness drops every brace before comparing strings, so the cut-off "{{{...1" reads as 1;
    # it is too long to read in-process, so it was read (and decided) in a worker
    assert [(r.correct, r.answer, r.timed_out) for r in results] == [(True, None, False), (True, "2", False)]


def test_python_in_an_answer_is_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = f"__import__('os').system('touch {marker}')"
    assert _parse(payload) == payload  # left as text: the harness would hand it to eval()
    assert _parse("(1).real") == "(1).real"
    assert symbolic_equal(payload, "0") is False
    harness.grade_batch(["0"], [f"\\boxed{{{payload}}}"], timeout=1.0)
    assert not marker.exists()


def test_plain_expressions_still_parse() -> None:
    assert symbolic_equal("2*x + 1", "1 + x*2") is True
