"""verl and TRL adapters: the training rule (last box) in the shapes those frameworks call."""

from __future__ import annotations

import pytest

from oneshot_rlvr.reward.adapters import (
    completion_text,
    compute_score,
    compute_score_batch,
    trl_math_reward,
    trl_reward_function,
)


def test_verl_compute_score() -> None:
    assert compute_score("deepscaler", r"so \boxed{12.8}", "12.8", {"index": 124}) == 1.0
    assert compute_score("deepscaler", r"so \boxed{12.7}", "12.8") == 0.0
    assert compute_score("deepscaler", "so the answer is 12.8", "12.8") == 0.0  # no box, no reward
    assert compute_score("deepscaler", r"\boxed{3} then \boxed{\frac{1}{2}}", "0.5", None, step=3) == 1.0
    score = compute_score(data_source="math", solution_str=r"\boxed{24}", ground_truth=24)
    assert score == 1.0 and isinstance(score, float)  # numeric ground truths are read as text
    assert compute_score("math", r"\boxed{-2}", ["2", "-2"]) == 1.0  # any acceptable answer
    assert compute_score("math", r"\boxed{3}", ["2", "-2"]) == 0.0
    assert compute_score("math", None, "2") == 0.0
    assert compute_score("math", r"\boxed{2}", None) == 0.0


def test_verl_batch_form() -> None:
    scores = compute_score_batch(
        ["a", "b", "c"], [r"\boxed{1}", r"\boxed{x+1}", "1"], ["1", "1+x", "1"], [None, None, None]
    )
    assert scores == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="2 solutions but 1 ground truths"):
        compute_score_batch(["a", "b"], ["1", "2"], ["1"])


@pytest.mark.parametrize(
    ("completion", "text"),
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "hi"}], "hi"),
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "a"),
        ({"role": "assistant", "content": "x"}, "x"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "ab"),
        (None, None),
    ],
)
def test_completion_text(completion: object, text: str | None) -> None:
    assert completion_text(completion) == text


def test_completion_text_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="completion must be"):
        completion_text(42)


def test_trl_reward_function_with_text_and_chat_completions() -> None:
    prompts = ["p1", "p2", "p3"]
    completions = [r"\boxed{4}", [{"role": "assistant", "content": r"so \boxed{\dfrac{4}{3}}"}], "4"]
    assert trl_math_reward(prompts, completions, answer=["4", r"\frac{4}{3}", "4"]) == [1.0, 1.0, 0.0]
    assert trl_math_reward.__name__ == "math_accuracy"
    lenient = trl_reward_function("label", require_boxed=False)
    assert lenient(prompts, completions, label=["4", r"\frac{4}{3}", "4"]) == [1.0, 1.0, 1.0]
    # a solution column (full worked solution) is read through its box
    assert trl_math_reward(prompts[:1], completions[:1], solution=[r"... so $\boxed{4}$."]) == [1.0]


def test_trl_reward_function_needs_the_gold_column() -> None:
    with pytest.raises(KeyError, match="'answer' column"):
        trl_math_reward(["p"], ["c"], other=["x"])
    with pytest.raises(ValueError, match="1 gold answers but 2 completions"):
        trl_math_reward(["p", "q"], ["c", "d"], answer=["x"])
