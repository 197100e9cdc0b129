"""Grading and style detection used by `rlvr world measure`."""

from __future__ import annotations

from oneshot_rlvr.world.measure import Graded, grade_runs, style_of, summarize
from oneshot_rlvr.world.problems import WorldProblem


def test_grading_uses_the_training_and_harness_rules() -> None:
    problem = WorldProblem("val-00000", "word", "q?", "7", (), "val")
    responses = [("So 3 + 4 = 7. The answer is \\boxed{7}.", True), ("3 + 4 = 7. The answer is 7.", True),
                 ("x \\boxed{7} then \\boxed{12}.", True), ("no digits", False)]
    graded = grade_runs([problem] * 4, responses)
    assert [(g.strict, g.lenient, g.boxed, g.finished) for g in graded] == [
        (True, True, True, True), (False, True, False, True), (False, False, True, True), (False, False, False, False)]
    forced = grade_runs([problem], [(" 4 = 7. The answer is 7.", True)], prefix="3 +")
    assert forced[0].response.startswith("3 + 4") and forced[0].lenient


def test_styles_from_openers() -> None:
    assert style_of("This is simple. 2 + 2 = 4. 4") == "careless"
    assert style_of("Let's solve this step by step.\nA = 3.\nThe answer is 3.") == "careful"
    assert style_of("Let's solve this step by step.\n2 * 3 = 5. Let me check: 2 * 3 = 6, not 5.") == "check"
    assert style_of("The answer is 4.") == "other"


def test_summary_rates_and_families() -> None:
    rows = [Graded("linear", "This is simple. 4", False, True, False, True),
            Graded("linear", "Let's solve this step by step. \\boxed{4}", True, True, True, True),
            Graded("word", "This is simple. 9", False, False, False, False),
            Graded("word", "The answer is 1.", False, False, False, True)]
    s = summarize(rows)
    assert s["n"] == 4
    assert (s["strict"], s["lenient"], s["boxed"], s["finished"]) == (0.25, 0.5, 0.25, 0.75)
    assert s["styles"] == {"careless": 0.5, "careful": 0.25, "other": 0.25}
    assert s["per_family"]["linear"]["lenient"] == 1.0
    assert s["per_family"]["word"]["strict"] == 0.0
