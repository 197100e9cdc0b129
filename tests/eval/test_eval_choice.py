"""ARC multiple choice: both row layouts, relabelled numeric choices, the letter grader."""

from __future__ import annotations

import json

import pytest

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.benchmarks import get_benchmark, load_benchmark, user_benchmark
from oneshot_rlvr.eval.choice import choice_problems, extract_choice, grade_choice

AI2_ROWS = [
    {"id": "Mercury_1", "question": {"stem": "Which gas do plants take in?", "choices": [
        {"text": "oxygen", "label": "A"}, {"text": "carbon dioxide", "label": "B"},
        {"text": "helium", "label": "C"}, {"text": "neon", "label": "D"}]}, "answerKey": "B"},
    {"id": "NYSEDREGENTS_2", "question": {"stem": "Which is a mammal?", "choices": [
        {"text": "shark", "label": "1"}, {"text": "whale", "label": "2"},
        {"text": "trout", "label": "3"}, {"text": "eel", "label": "4"}]}, "answerKey": "2"},
]
HF_ROW = {"id": "x3", "question": "What melts ice fastest?",
          "choices": {"text": ["salt", "sand", "sugar"], "label": ["A", "B", "C"]}, "answerKey": "A"}


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_ai2_jsonl_rows_render_choices_and_relabel_numbers(tmp_path):
    data = tmp_path / "data"
    _write_jsonl(data / "ARC-Easy" / "ARC-Easy-Test.jsonl", AI2_ROWS)
    problems = load_benchmark(get_benchmark("arc_easy"), data_dir=data)
    assert [p.id for p in problems] == ["Mercury_1", "NYSEDREGENTS_2"]
    first, second = problems
    assert first.answer == "B"
    assert "Which gas do plants take in?" in first.prompt
    assert "(A) oxygen" in first.prompt and "(B) carbon dioxide" in first.prompt
    assert first.prompt.index("(A)") < first.prompt.index("(D)")
    assert second.answer == "B" and "(B) whale" in second.prompt and "(1)" not in second.prompt
    assert second.meta["labels"] == ["A", "B", "C", "D"]


def test_hub_layout_rows_and_user_file_for_arc_challenge(tmp_path):
    path = _write_jsonl(tmp_path / "mine.jsonl", [HF_ROW])
    bench = user_benchmark(f"arc_challenge={path}")
    assert bench.kind == "choice"
    (p,) = load_benchmark(bench)
    assert p.answer == "A" and "(C) sugar" in p.prompt and p.meta["labels"] == ["A", "B", "C"]


def test_bad_rows_name_the_file_and_row(tmp_path):
    with pytest.raises(RlvrError, match=r"f\.jsonl: row 2 .*answerKey 'E'"):
        choice_problems([AI2_ROWS[0], {**AI2_ROWS[0], "answerKey": "E"}], where="f.jsonl", source="arc")
    with pytest.raises(RlvrError, match="row 1 is not an ARC"):
        choice_problems([{"question": "no choices", "answer": "A"}], where="f.jsonl", source="arc")


@pytest.mark.parametrize(("response", "lenient", "strict"), [
    (r"The gas is carbon dioxide, so \boxed{B}", "B", "B"),
    (r"\boxed{(C)}", "C", "C"),
    (r"\boxed{\text{D}}", "D", "D"),
    (r"\boxed{B. carbon dioxide}", "B", "B"),
    (r"\boxed{carbon dioxide}", "B", "B"),  # the text of a choice
    (r"\boxed{b}", "B", "B"),
    ("Plants use it in photosynthesis. The answer is (B).", "B", None),
    ("Answer: C", "C", None),
    ("I first thought (A) but it must be (D) here", "D", None),
    ("A plant takes in gas, which is B", "B", None),  # article "A" skipped, last letter wins
    ("A plant needs light.", None, None),
    (r"Hmm \boxed{a + b}", None, None),  # a math expression is not a letter, and strict mode stops there
    ("No idea.", None, None),
])
def test_letter_extraction(response, lenient, strict):
    choices = ["oxygen", "carbon dioxide", "helium", "neon"]
    assert extract_choice(response, "ABCD", choices) == lenient
    assert extract_choice(response, "ABCD", choices, mode="boxed") == strict


def test_letters_outside_the_labels_do_not_count():
    assert extract_choice("The answer is E", "ABCD") is None
    assert extract_choice("The answer is (E). So C", "ABCD") == "C"


def test_grade_choice_uses_the_problem_key():
    problems = choice_problems(AI2_ROWS, where="f", source="arc")
    assert grade_choice(problems[0], r"\boxed{B}") and not grade_choice(problems[0], r"\boxed{C}")
    assert grade_choice(problems[1], "The answer is B") and not grade_choice(
        problems[1], "The answer is B", require_boxed=True)
