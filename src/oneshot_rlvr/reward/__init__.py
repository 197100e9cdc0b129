"""The verifiable math reward: final-answer extraction and equivalence grading.

`verify` / `verify_batch` / `math_reward` / `explain` use one process-wide `Grader`; its sympy worker processes
start on first need and stop at interpreter exit or on `close()`.
"""

from __future__ import annotations

from oneshot_rlvr.reward.extract import extract_answer
from oneshot_rlvr.reward.grade import (
    Grade,
    Grader,
    GraderConfig,
    Reason,
    close,
    configure,
    default_grader,
    explain,
    explain_batch,
    math_reward,
    verify,
    verify_batch,
)

__all__ = [
    "Grade",
    "Grader",
    "GraderConfig",
    "Reason",
    "close",
    "configure",
    "default_grader",
    "explain",
    "explain_batch",
    "extract_answer",
    "math_reward",
    "verify",
    "verify_batch",
]
