"""Turn one or a few examples into a training set: each copy is its own GRPO group."""

from __future__ import annotations

from collections.abc import Sequence

from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.errors import RlvrError


def expand_to_batch(problems: Sequence[Problem], batch_size: int) -> list[Problem]:
    """Repeat a small example set to fill one batch (pi1 x 128; pi1 + pi13 as 64 + 64).

    Sets at least as large as the batch are returned unchanged (ordinary RLVR on a pool).
    """
    if not problems:
        raise RlvrError("no training problems given")
    if len(problems) >= batch_size:
        return list(problems)
    if batch_size % len(problems):
        raise RlvrError(
            f"{len(problems)} training examples do not divide the batch of {batch_size} prompts evenly; "
            f"choose batch_size as a multiple of {len(problems)}"
        )
    copies = batch_size // len(problems)
    return [p for p in problems for _ in range(copies)]
