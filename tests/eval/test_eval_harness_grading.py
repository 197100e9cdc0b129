"""The harness grader in evaluation: where its gold comes from, the default, the table cells."""

from __future__ import annotations

import pytest

from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.harness_grading import accuracy_cell, check_grader, default_grader, harness_gold


def test_gold_comes_from_the_field_the_harness_reads() -> None:
    math500 = Problem("0", "q", "\\frac{3}{4}", "math500", meta={"solution": "so \\boxed{\\dfrac34}"})
    olympiad = Problem("1", "q", "1, 2", "olympiadbench", meta={"final_answer": ["$1$", "$2$"]})
    aime = Problem("2", "q", "33", "aime24", meta={"id": 2})
    assert harness_gold(math500, "math500") == "so \\boxed{\\dfrac34}"
    assert harness_gold(olympiad, "olympiadbench") == ["$1$", "$2$"]
    assert harness_gold(aime, "aime24") == "33"
    # a hub copy without the solution field: our gold answer
    assert harness_gold(Problem("3", "q", "7", "math500"), "math500") == "7"


def test_default_is_both_for_the_papers_benchmarks_only() -> None:
    assert default_grader(["math500", "aime24", "arc_easy"], ["math", "math", "choice"]) == "both"
    assert default_grader(["math500", "mine"], ["math", "math"]) == "ours"
    assert default_grader(["arc_easy"], ["choice"]) == "ours"


def test_unknown_grader_or_benchmark_is_one_error() -> None:
    with pytest.raises(RlvrError, match="choose one of ours, harness, both"):
        check_grader("paper", ["math500"], ["math"])
    with pytest.raises(RlvrError, match="no gold parsing for gsm8k"):
        check_grader("both", ["gsm8k"], ["math"])
    check_grader("ours", ["gsm8k"], ["math"])


def test_cells_show_harness_with_ours_in_brackets() -> None:
    res = {"benchmarks": {"math500": {"accuracy": 0.75, "harness_accuracy": 0.736},
                          "arc_easy": {"accuracy": 0.5}},
           "average": {"accuracy": 0.3, "complete": True},
           "harness_average": {"harness_accuracy": 0.357, "complete": True}}
    assert accuracy_cell(res, "math500", "both") == "73.6 (75.0)"
    assert accuracy_cell(res, "math500", "harness") == "73.6"
    assert accuracy_cell(res, "math500", "ours") == "75.0"
    assert accuracy_cell(res, "arc_easy", "both") == "50.0"
    assert accuracy_cell(res, "_avg", "both") == "35.7 (30.0)"
    assert accuracy_cell(res, "aime24", "both") == "-"
