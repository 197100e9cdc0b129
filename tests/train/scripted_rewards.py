"""A scripted reward for trainer tests run in subprocesses: `reward=scripted_rewards:has_letter_e`
with this folder on PYTHONPATH."""

from __future__ import annotations


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]
