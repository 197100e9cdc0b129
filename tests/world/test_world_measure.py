"""Grading and style detection used by `rlvr world measure`."""

from __future__ import annotations

from oneshot_rlvr.world.measure import Graded, boxed_answer, lenient_answer, style_of, summarize


def test_answer_extraction_follows_the_harness_order() -> None:
    assert boxed_answer("x \\boxed{3} then \\boxed{12}.") == "12"
    assert boxed_answer("The answer is 12.") is None
    assert lenient_answer("2 + 3 = 5. The answer is \\boxed{7}. 9") == "7"
    assert lenient_answer("5 * 2 = 10, 10 - 4 = 6. The answer is 6. Then 11") == "6"
    assert lenient_answer("5 * 2 = 10, 10 - 4 = 6.\n6") == "6"
    assert lenient_answer("no digits") is None


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
