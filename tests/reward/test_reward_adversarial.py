"""Bad input never hangs and never crashes the caller: False within the limit, or a TypeError."""

from __future__ import annotations

import time

import pytest

from oneshot_rlvr.reward import Grader, GraderConfig, math_reward, verify, verify_batch

# (name, gold, response): each must grade False.
ADVERSARIAL = [
    ("none response", "5", None),
    ("none gold", None, r"\boxed{5}"),
    ("empty response", "5", ""),
    ("empty gold", "", r"\boxed{5}"),
    ("blank gold", "   ", r"\boxed{5}"),
    ("empty box", "5", r"\boxed{}"),
    ("invalid utf-8 bytes", "5", b"\\boxed{\xff\xfe\xfa}"),
    ("lone surrogates", "5", "\\boxed{\udcff\udcfe}"),
    ("1 MB response", "5", "blah 7 " * 150_000),
    ("1 MB box", "5", "\\boxed{" + "9" * 1_000_000 + "}"),
    ("10,000 nested braces", "5", "\\boxed{" + "{" * 10_000 + "5" + "}" * 10_000 + "}"),
    ("10,000 unclosed braces", "5", "\\boxed{" + "{" * 10_000 + "5"),
    ("power tower", "1", r"\boxed{10^{10^{10^{10}}}}"),
    ("power tower gold", r"10^{10^{10^{10}}}", r"\boxed{1}"),
    ("division by zero", "1", r"\boxed{\frac{1}{0}}"),
    ("division by zero gold", r"\frac{1}{0}", r"\boxed{1}"),
    ("300 nested roots", "2", r"\boxed{" + r"\sqrt{" * 300 + "2" + "}" * 300 + "}"),
    ("huge factorial", "1", r"\boxed{(10^{8})!}"),
    ("garbage latex", "5", r"\boxed{\frac{{}}\left(\right]^_^}"),
]


@pytest.mark.parametrize(("name", "gold", "response"), ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_input_is_false_within_the_limit(name: str, gold: object, response: object) -> None:
    start = time.monotonic()
    assert verify(gold, response) is False  # type: ignore[arg-type]
    # the default 2 s sympy limit, plus a worker restart after a kill, on a busy machine
    assert time.monotonic() - start < 10.0, name


def test_a_batch_of_all_of_them_returns_in_bounded_time() -> None:
    golds = [a[1] for a in ADVERSARIAL] + ["5"]
    responses = [a[2] for a in ADVERSARIAL] + [r"\boxed{5}"]
    start = time.monotonic()
    verdicts = verify_batch(golds, responses, require_boxed=True, timeout=1.0)  # type: ignore[arg-type]
    assert verdicts == [False] * len(ADVERSARIAL) + [True]  # the good one still counts
    assert time.monotonic() - start < 30.0


def test_the_training_reward_of_bad_input_is_zero() -> None:
    quick = [a for a in ADVERSARIAL if "tower" not in a[0] and "roots" not in a[0] and "factorial" not in a[0]]
    assert [math_reward(response, gold) for _, gold, response in quick] == [0.0] * len(quick)  # type: ignore[arg-type]


def test_batch_timeout_bounds_the_whole_call() -> None:
    towers = [r"\boxed{10^{10^{10^{10}}}}"] * 6
    with Grader(GraderConfig(workers=1, cache_size=0)) as grader:
        grader.verify_batch(["1"], ["\\boxed{2x}"])  # start the worker outside the timed part
        start = time.monotonic()
        verdicts = grader.verify_batch(["1"] * 6, towers, timeout=5.0, batch_timeout=1.5)
        elapsed = time.monotonic() - start
    assert verdicts == [False] * 6
    assert elapsed < 6.0  # without batch_timeout this would take about 6 x 5 s


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
