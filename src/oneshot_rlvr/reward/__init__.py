"""The verifiable math reward: final-answer extraction and equivalence grading.

`verify` / `verify_batch` / `math_reward` use one process-wide `Grader`; its sympy worker processes
start on first need and stop at interpreter exit or on `close()`.
"""

from __future__ import annotations

from oneshot_rlvr.reward.extract import extract_answer
from oneshot_rlvr.reward.grade import (
    Grader,
    GraderConfig,
    close,
    configure,
    default_grader,
    math_reward,
    verify,
    verify_batch,
)

__all__ = [
    "Grader",
    "GraderConfig",
    "close",
    "configure",
    "default_grader",
    "extract_answer",
    "math_reward",
    "verify",
    "verify_batch",
]
