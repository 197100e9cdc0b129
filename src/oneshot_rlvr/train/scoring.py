"""Calling the training reward and holding it to its contract: one finite number per response.

A reward that returns too few scores, a string, NaN or inf would otherwise become a silent zero, a shape
error deep in the update, or a NaN loss several steps later; here it stops the run at the step it happened,
in one line that names the reward and the response (its problem and sample) that broke the contract.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Sequence
from typing import Any

from oneshot_rlvr.data import Problem
from oneshot_rlvr.errors import RlvrError

RewardFn = Callable[[list[Problem], list[str]], Sequence[float]]


def reward_name(fn: Callable[..., Any]) -> str:
    """`module:function`, the way the `reward` setting names it (`math` for the built-in reward)."""
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if module == "oneshot_rlvr.train.loop" and name == "math_rewards":
        return "math"
    return f"{module}:{name}" if module and name else repr(fn)


def score_responses(reward_fn: RewardFn, problems: list[Problem], texts: list[str], n: int,
                    step: int) -> list[float]:
    """`reward_fn(problems, texts)` as floats, row i scoring texts[i] (sample i % n of problems[i]).

    Raises RlvrError when the reward returns anything but one finite number per response.
    """
    where = f"step {step}: reward {reward_name(reward_fn)}"
    scores = reward_fn(problems, texts)
    try:
        count = len(scores)
    except TypeError:
        raise RlvrError(f"{where} returned a {type(scores).__name__}, not one number per response") from None
    if count != len(texts):
        raise RlvrError(f"{where} returned {count} scores for {len(texts)} responses")
    values: list[float] = []
    for i, score in enumerate(scores):
        try:  # (a string is not a score, even one float() would read)
            value = math.nan if isinstance(score, (str, bytes)) else float(score)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise RlvrError(f"{where} gave {reprlib.repr(score)} for response {i} (problem {problems[i].id!r}, sample "
                            f"{i % n + 1} of {n}); every score must be a finite number")
        values.append(value)
    return values
