"""The paper's grading rule: the verdict of the Qwen2.5-Math evaluation harness that One-Shot-RLVR ships.

Use it to put numbers beside the paper's tables; use `reward.verify` (our rule) for everything else.
docs/grading.md says where the two differ and which to cite.

    >>> grade("\\\\boxed{25}", "... so the answer is \\\\boxed{0.25}")   # the harness also tries x100, /100
    True

Extraction, normalisation and the cheap comparisons (strings, numbers) run in this process; anything
that reaches the harness's sympy step runs in the grader's worker pool under a hard limit of
`TIMEOUT` seconds per comparison (the harness's own 3 s), where running out of time counts as wrong.
A read answer longer than `MAX_INLINE_CHARS` (the harness's normalisation is quadratic on some
inputs) is read and compared in a worker too, under the same limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from oneshot_rlvr.reward.harness_equal import NeedsSympy, math_equal, needs_sympy
from oneshot_rlvr.reward.harness_text import (
    BENCHMARKS,
    adjust_for_choice,
    check_benchmark,
    extract,
    gold_answer,
    raw_answer,
    response_text,
)
from oneshot_rlvr.reward.pool import TIMED_OUT, UNFINISHED, HarnessTask

TIMEOUT = 3.0
MAX_INLINE_CHARS = 2000

__all__ = ["BENCHMARKS", "TIMEOUT", "HarnessVerdict", "extract", "gold_answer", "grade", "grade_batch",
           "grade_detail"]


@dataclass(frozen=True)
class HarnessVerdict:
    """One harness verdict with what it compared."""

    correct: bool
    answer: str | None
    """The prediction as the harness compares it; None when it was too long to read in-process."""
    gold: str
    """The gold answer as the harness compares it."""
    timed_out: bool = False
    """The comparison ran past its time limit (it then counts as wrong, as in the harness)."""


def grade(gold: str, response: str, benchmark: str = "math500") -> bool:
    """Whether the evaluation harness counts `response` correct for `gold` on `benchmark`.

    `gold` is what the benchmark's file holds: a solution (or a bare answer) for math500 and
    minerva_math, the final answer for olympiadbench, the answer for aime24 / aime25 / amc23.
    """
    return grade_detail(gold, response, benchmark).correct


def grade_detail(gold: str | Sequence[str], response: str, benchmark: str = "math500") -> HarnessVerdict:
    """`grade` with the answers it compared and whether it timed out."""
    return grade_batch([gold], [response], benchmark)[0]


def grade_batch(
    golds: Sequence[str | Sequence[str]],
    responses: Sequence[str],
    benchmark: str = "math500",
    *,
    timeout: float = TIMEOUT,
) -> list[HarnessVerdict]:
    """Harness verdicts for many responses; only those that need sympy go to the worker pool."""
    if len(golds) != len(responses):
        raise ValueError(f"{len(golds)} gold answers for {len(responses)} responses")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    check_benchmark(benchmark)
    gold_texts = [gold_answer(g, benchmark) for g in golds]
    answers: list[str | None] = []
    decided: list[bool | None] = []
    tasks: list[HarnessTask] = []
    waiting: list[int] = []
    for i, (gold, response) in enumerate(zip(gold_texts, responses, strict=True)):
        answer, verdict, task = _decide(gold, response, benchmark)
        answers.append(answer)
        decided.append(verdict)
        if task is not None:
            tasks.append(task)
            waiting.append(i)
    timed_out = [False] * len(responses)
    if tasks:
        from oneshot_rlvr.reward.grade import default_grader

        for i, outcome in zip(waiting, default_grader().pool.map(tasks, timeout=timeout), strict=True):
            decided[i] = outcome == "equal"
            timed_out[i] = outcome in (TIMED_OUT, UNFINISHED)
    return [
        HarnessVerdict(bool(ok), answer, gold, late)
        for ok, answer, gold, late in zip(decided, answers, gold_texts, timed_out, strict=True)
    ]


def _decide(gold: str, response: str, benchmark: str) -> tuple[str | None, bool | None, HarnessTask | None]:
    """(answer, verdict, task): a verdict when no sympy is needed, else the worker task to run."""
    text = response_text(response)
    raw = raw_answer(text)
    if raw is not None and len(raw) > MAX_INLINE_CHARS:
        return None, None, ("harness", response, gold, benchmark)
    answer = adjust_for_choice(extract(response, benchmark), gold, text)
    try:
        return answer, math_equal(answer, gold, needs_sympy), None
    except NeedsSympy:
        return answer, None, ("harness", answer, gold, "")
