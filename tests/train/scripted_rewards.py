"""Scripted rewards for trainer tests (imported by name, `reward=scripted_rewards:has_letter_e`, with this
folder on sys.path or PYTHONPATH)."""

from __future__ import annotations

import os
import signal

_calls = 0


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


def has_letter_e_killed_in_step_4(problems: list, texts: list[str]) -> list[float]:
    """`has_letter_e`, but the process is killed (SIGKILL: no handler, no cleanup) when step 4 asks for its
    rewards, after step 3's metrics row is written. A single process asks once per step."""
    global _calls
    _calls += 1
    if _calls == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return has_letter_e(problems, texts)


NOT_A_FUNCTION = 3
"""`reward=scripted_rewards:NOT_A_FUNCTION` names something that cannot be called."""


def nan_for_the_second_sample_of_8(problems: list, texts: list[str]) -> list[float]:
    """1.0 for every response, but NaN for the second sample of any problem whose gold answer is 8."""
    seen: dict[str, int] = {}
    scores = []
    for p in problems:
        seen[p.id] = seen.get(p.id, 0) + 1
        scores.append(float("nan") if p.answer == "8" and seen[p.id] == 2 else 1.0)
    return scores
