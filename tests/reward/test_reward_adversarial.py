"""Bad input never hangs and never crashes the caller: False for an honest reason, or a TypeError.

Each input says why it must be False. Only the answers sympy could spend hours on (the power towers,
the factorial) may time out; everything else is decided, so a crash or a timeout that merely happens
to say False fails here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oneshot_rlvr.reward import Grader, GraderConfig, Reason, explain, explain_batch, math_reward, verify, verify_batch

# (name, gold, response, reason): each must grade False for that reason.
ADVERSARIAL = [
    ("none response", "5", None, Reason.NO_ANSWER),
    ("none gold", None, r"\boxed{5}", Reason.NO_ANSWER),
    ("empty response", "5", "", Reason.NO_ANSWER),
    ("empty gold", "", r"\boxed{5}", Reason.NO_ANSWER),
    ("blank gold", "   ", r"\boxed{5}", Reason.NO_ANSWER),
    ("empty box", "5", r"\boxed{}", Reason.NO_ANSWER),
    ("invalid utf-8 bytes", "5", b"\\boxed{\xff\xfe\xfa}", Reason.UNPARSED),
    ("lone surrogates", "5", "\\boxed{\udcff\udcfe}", Reason.UNPARSED),
    ("1 MB response", "5", "blah 7 " * 150_000, Reason.UNEQUAL),
    ("1 MB box", "5", "\\boxed{" + "9" * 1_000_000 + "}", Reason.TOO_LONG),
    ("10,000 nested braces", "5", "\\boxed{" + "{" * 10_000 + "5" + "}" * 10_000 + "}", Reason.TOO_LONG),
    ("10,000 unclosed braces", "5", "\\boxed{" + "{" * 10_000 + "5", Reason.NO_ANSWER),
    ("power tower", "1", r"\boxed{10^{10^{10^{10}}}}", Reason.TIMEOUT),
    ("power tower gold", r"10^{10^{10^{10}}}", r"\boxed{1}", Reason.TIMEOUT),
    ("division by zero", "1", r"\boxed{\frac{1}{0}}", Reason.UNEQUAL),
    ("division by zero gold", r"\frac{1}{0}", r"\boxed{1}", Reason.UNEQUAL),
    ("300 nested roots", "2", r"\boxed{" + r"\sqrt{" * 300 + "2" + "}" * 300 + "}", Reason.UNPARSED),
    ("huge factorial", "1", r"\boxed{(10^{8})!}", Reason.TIMEOUT),
    ("garbage latex", "5", r"\boxed{\frac{{}}\left(\right]^_^}", Reason.UNPARSED),
]
_SLOW = {a[0] for a in ADVERSARIAL if a[3] is Reason.TIMEOUT}
# Under the training rule (last box only) a response without a box has no answer at all.
_BOXED_REASON = {"1 MB response": Reason.NO_ANSWER}


def _boxed_reason(case: tuple[str, object, object, Reason]) -> Reason:
    return _BOXED_REASON.get(case[0], case[3])


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    # short enough to keep the timeouts cheap, long enough that nothing but the slow inputs comes near it
    with Grader(GraderConfig(timeout=3.0, cache_size=0)) as g:
        yield g


@pytest.mark.parametrize(("name", "gold", "response", "reason"), ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_input_is_false_for_its_reason(
    grader: Grader, name: str, gold: object, response: object, reason: Reason
) -> None:
    grade = grader.explain(gold, response)  # type: ignore[arg-type]
    assert grade.ok is False
    assert grade.reason is reason, (name, grade.reason)


def test_a_timeout_kills_and_replaces_the_worker(grader: Grader) -> None:
    replaced = grader.pool.replaced
    grade = grader.explain("1", r"\boxed{10^{10^{10^{10}}}}")
    assert grade.reason is Reason.TIMEOUT
    assert grader.pool.replaced == replaced + 1
    assert grader.explain("x+1", r"\boxed{1+x}").reason is Reason.EQUAL  # the new worker grades


def test_a_batch_of_all_of_them_returns_every_verdict() -> None:
    golds = [a[1] for a in ADVERSARIAL] + ["5"]
    responses = [a[2] for a in ADVERSARIAL] + [r"\boxed{5}"]
    grades = explain_batch(golds, responses, require_boxed=True, timeout=3.0)  # type: ignore[arg-type]
    assert len(grades) == len(ADVERSARIAL) + 1
    assert [g.ok for g in grades] == [False] * len(ADVERSARIAL) + [True]  # the good one still counts
    assert [g.reason for g in grades[:-1]] == [_boxed_reason(a) for a in ADVERSARIAL]
    assert verify_batch(golds, responses, require_boxed=True, timeout=3.0) == [g.ok for g in grades]  # type: ignore[arg-type]


def test_the_training_reward_of_bad_input_is_zero() -> None:
    quick = [a for a in ADVERSARIAL if a[0] not in _SLOW]
    assert [math_reward(response, gold) for _, gold, response, _ in quick] == [0.0] * len(quick)  # type: ignore[arg-type]
    reasons = [explain(gold, response, require_boxed=True).reason for _, gold, response, _ in quick]  # type: ignore[arg-type]
    assert reasons == [_boxed_reason(a) for a in quick]


def test_batch_timeout_stops_the_whole_call() -> None:
    towers = [r"\boxed{10^{10^{10^{10}}}}"] * 6
    with Grader(GraderConfig(workers=1, cache_size=0)) as grader:
        assert grader.verify("1", "\\boxed{2x}") is False  # the worker is up before the batch starts
        replaced = grader.pool.replaced
        grades = grader.explain_batch(["1"] * 6, towers, timeout=600.0, batch_timeout=1.0)
        # with a 600 s limit per comparison only the deadline can have stopped the first tower,
        # and the towers behind it never started
        assert [g.reason for g in grades] == [Reason.DEADLINE] * 6
        assert grader.pool.replaced == replaced + 1  # the busy worker was stopped, not left running
        assert grader.verify("x+1", "\\boxed{1+x}") is True


@pytest.mark.parametrize("bad", [5, 2.5, ["5"], {"a": 1}])
def test_wrong_types_are_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="response must be str"):
        verify("5", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="gold must be str"):
        verify(bad, "5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_batch(["5"], [bad])  # type: ignore[list-item]


def test_mismatched_batch_lengths_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="2 golds but 1 responses"):
        verify_batch(["1", "2"], ["1"])
