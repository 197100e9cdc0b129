"""The `reward` setting's rewards: math, the controls (random, format, incorrect, majority, neg_entropy,
self_certainty) and module:function, on hand-made responses."""

from __future__ import annotations

import random

import pytest
import torch

from oneshot_rlvr.data import Problem
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.reward.functions import (
    RewardInputs,
    TokenStats,
    format_reward,
    incorrect_label,
    majority_label,
    random_draw,
    resolve_reward,
)

P = Problem("p0", "What is 15 + 2 * 8 - 5?", "26")
Q = Problem("p1", "What is 2 + 3?", "5")


def score(name: str, texts: list[str], problems: list[Problem] | None = None, n: int | None = None, **kw: object):
    reward = resolve_reward(name, **kw)  # type: ignore[arg-type]
    inputs = RewardInputs(problems or [P] * len(texts), texts, n or len(texts), seed=3, step=2)
    return reward.score(inputs)


def test_math_reward_grades_the_last_box_and_reports_correctness() -> None:
    out = score("math", ["so \\boxed{26}", "\\boxed{25}", "26"])
    assert out.rewards == [1.0, 0.0, 0.0] and out.correct == [True, False, False]


def test_format_rewards_any_complete_box() -> None:
    assert [format_reward(t) for t in ["\\boxed{7}", "\\boxed{26}", "26", "\\boxed{", "\\boxed{}"]] == [
        1.0, 1.0, 0.0, 0.0, 0.0]
    out = score("format", ["\\boxed{7}", "26"])
    assert out.rewards == [1.0, 0.0] and out.correct is None  # the trainer grades the gold itself


def test_random_reward_is_a_seeded_bernoulli_per_row() -> None:
    # the draw of row r at (seed 3, step 2) is random.Random((3 * 1_000_003 + 2) * 1_000_033 + r).random()
    expected = [1.0 if random.Random((3 * 1_000_003 + 2) * 1_000_033 + r).random() < 0.3 else 0.0 for r in range(8)]
    assert score("random", ["x"] * 8, random_p=0.3).rewards == expected
    assert random_draw(3, 2, 5) == random.Random((3 * 1_000_003 + 2) * 1_000_033 + 5).random()
    # Rows 4..7 scored alone (another process's share) get the same draws as in the whole batch.
    reward = resolve_reward("random", random_p=0.3)
    part = reward.score(RewardInputs([P] * 4, ["x"] * 4, 4, seed=3, step=2, first_row=4))
    assert part.rewards == expected[4:]
    rate = sum(random_draw(0, 1, r) < 0.5 for r in range(4000)) / 4000
    assert 0.46 < rate < 0.54
    assert score("random", ["x"] * 4, random_p=0.0).rewards == [0.0] * 4
    with pytest.raises(RlvrError, match="random_reward_p"):
        resolve_reward("random", random_p=1.5)


def test_incorrect_label_is_given_or_gold_plus_one() -> None:
    assert incorrect_label(P) == "27"
    assert incorrect_label(Problem("d", "q", "2.5")) == "3.5"
    assert incorrect_label(Problem("m", "q", "x + 1", meta={"incorrect_answer": "x"})) == "x"
    with pytest.raises(RlvrError, match=r"training problem s1: .*incorrect_answer"):
        incorrect_label(Problem("s1", "q", "\\frac{1}{2} \\pi"))
    out = score("incorrect", ["\\boxed{27}", "\\boxed{26}"])
    assert out.rewards == [1.0, 0.0]


def test_majority_label_clusters_graded_equal_answers_and_breaks_ties_by_first() -> None:
    # 0.5 and 1/2 are one answer (2 votes) against 3 (1 vote); no answer counts for nothing
    label, agree = majority_label(["0.5", "3", "\\frac{1}{2}", None])
    assert label == "0.5" and agree == [True, False, True, False]
    assert majority_label(["4", "5", "5", "4"]) == ("4", [True, False, False, True])  # tie: 4 came first
    assert majority_label([None, None]) == (None, [False, False])


def test_majority_reward_and_pseudo_label_accuracy() -> None:
    texts = ["\\boxed{26}", "\\boxed{26}", "\\boxed{25}",  # group 1 (gold 26): label 26, right
             "\\boxed{6}", "\\boxed{6}", "\\boxed{5}",  # group 2 (gold 5): label 6, wrong
             "no box", "none", "nothing"]  # group 3: no label
    out = score("majority", texts, problems=[P] * 3 + [Q] * 3 + [Q] * 3, n=3)
    assert out.rewards == [1, 1, 0, 1, 1, 0, 0, 0, 0]
    assert out.metrics == {"pseudo_label_acc": pytest.approx(1 / 3)}


def _stats() -> TokenStats:
    mask = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 1]])
    return TokenStats(logp=torch.tensor([[9.0, -1.0, -3.0, 9.0], [0.0, -0.5, -0.5, -2.0]]),
                      entropy=torch.tensor([[9.0, 2.0, 4.0, 9.0], [0.0, 0.3, 0.6, 0.9]]),
                      certainty=torch.tensor([[9.0, 1.0, 0.0, 9.0], [0.0, 0.25, 0.5, 0.75]]), mask=mask)


def test_neg_entropy_and_self_certainty_read_the_token_statistics() -> None:
    inputs = RewardInputs([P, P], ["a", "b"], 2, stats=_stats())
    token = resolve_reward("neg_entropy").score(inputs).rewards
    assert token == pytest.approx([-3.0, -0.6])  # minus the mean entropy over the response tokens
    sequence = resolve_reward("neg_entropy", entropy_level="sequence").score(inputs).rewards
    assert sequence == pytest.approx([-2.0, -1.0])  # the mean sampled-token log-prob
    assert resolve_reward("self_certainty").score(inputs).rewards == pytest.approx([0.5, 0.5])
    assert resolve_reward("neg_entropy").needs_token_stats and not resolve_reward("format").needs_token_stats
    with pytest.raises(RlvrError, match="token statistics"):
        resolve_reward("self_certainty").score(RewardInputs([P], ["a"], 1))


def test_module_function_and_unknown_names() -> None:
    out = score("tests.reward.test_reward_functions:_one_each", ["a", "b"])
    assert out.rewards == [1.0, 1.0]
    with pytest.raises(RlvrError, match="use math, random, format"):
        resolve_reward("majority_vote")
    with pytest.raises(RlvrError, match="cannot import"):
        resolve_reward("no_such_module_xyz:f")


def _one_each(problems: list, texts: list[str]) -> list[float]:
    return [1.0] * len(texts)
