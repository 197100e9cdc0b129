"""Property tests: the in-process stages never raise on any text and stay symmetric where they should."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oneshot_rlvr.reward import extract_answer
from oneshot_rlvr.reward import normalize as nz
from oneshot_rlvr.reward.extract import answer_for_grading
from oneshot_rlvr.reward.grade import fast_verdict

# Text made of the pieces answers are built from, so the regular expressions get exercised.
_PIECES = [
    "\\frac", "\\dfrac", "\\sqrt", "\\boxed{", "\\fbox{", "\\text{", "\\left(", "\\right)", "\\%", "\\$",
    "^\\circ", "{,}", ",\\!", "\\overline{", "\\times10^", "\\pi", "x", "=", "{", "}", "(", ")", "[", "]",
    ",", ".", "-", "+", "/", " ", "\n", "$", "1", "2", "0", "9", "e", "A", "(C)", "p.m.", ":", "answer is",
    "cm", "\\", "\udcff",
]
latexish = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
texts = st.one_of(st.text(max_size=200), latexish)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_extraction_and_normalisation_never_raise(text: str) -> None:
    for mode in ("lenient", "boxed"):
        answer = extract_answer(text, mode=mode)  # type: ignore[arg-type]
        assert answer is None or (isinstance(answer, str) and answer.strip() == answer and answer)
    answer_for_grading(text, require_boxed=False)
    normalized = nz.normalize(text)
    assert " " not in normalized.key or any(c.isalpha() for c in normalized.key)
    nz.choice_letter(text)
    nz.clock_time(text)
    nz.words(text)


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_fast_verdict_never_raises_and_equal_answers_match(gold: str, answer: str) -> None:
    verdict = fast_verdict(gold, answer)
    assert verdict in (True, False, None)
    if nz.normalize(gold).key:
        assert fast_verdict(gold, gold) is True


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(1, 10**6))
def test_numbers_in_different_forms_match(numerator: int, denominator: int) -> None:
    frac = nz.normalize(f"\\frac{{{numerator}}}{{{denominator}}}")
    slash = nz.normalize(f"{numerator}/{denominator}")
    assert nz.numbers_match(frac, slash) is True
    assert nz.numbers_match(frac, nz.normalize(f"\\frac{{{numerator + 1}}}{{{denominator}}}")) is False
