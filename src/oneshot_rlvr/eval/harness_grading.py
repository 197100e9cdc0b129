"""Grading benchmark responses under the paper's harness rule, beside our own (`rlvr eval --grader`).

`ours` is the project's grader (math-verify with hard limits); `harness` is the Qwen2.5-Math
evaluation harness's rule (`reward.harness`), which the paper's tables were scored with; `both` keeps
the two verdicts in every record. Records always carry our verdict (`correct`, `strict_correct`);
with `harness` or `both` they also carry `harness_correct`, `harness_answer` (the prediction the
harness compared, or null when too long to read in-process) and `harness_timed_out`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.errors import RlvrError

GRADERS = ("ours", "harness", "both")

# Where the harness reads a benchmark's gold from another field of its file than the one we grade
# with: MATH500's solution (its last box), OlympiadBench's final_answer list (its first item).
_GOLD_FIELDS = {"math500": "solution", "minerva_math": "solution", "olympiadbench": "final_answer"}


def harness_known(benchmark: str) -> bool:
    from oneshot_rlvr.reward.harness import BENCHMARKS

    return benchmark in BENCHMARKS


def default_grader(benchmark_names: Sequence[str], kinds: Sequence[str]) -> str:
    """`both` when every math benchmark is one the harness scores (the paper's), else `ours`."""
    math = [n for n, k in zip(benchmark_names, kinds, strict=True) if k == "math"]
    return "both" if math and all(harness_known(n) for n in math) else "ours"


def check_grader(grader: str, benchmark_names: Sequence[str], kinds: Sequence[str]) -> None:
    """One clear error for an unknown grader, or a harness grader on a benchmark the harness lacks."""
    if grader not in GRADERS:
        raise RlvrError(f"--grader {grader!r}: choose one of {', '.join(GRADERS)}")
    if grader == "ours":
        return
    unknown = [n for n, k in zip(benchmark_names, kinds, strict=True) if k == "math" and not harness_known(n)]
    if unknown:
        raise RlvrError(f"--grader {grader}: the harness rule has no gold parsing for {', '.join(unknown)} "
                        "(use --grader ours for these)")


def harness_gold(problem: Problem, benchmark: str) -> str | list[str]:
    """The gold as the harness reads it from the benchmark's row (falls back to our gold answer)."""
    value = problem.meta.get(_GOLD_FIELDS.get(benchmark, ""))
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return problem.answer


def harness_fields(benchmark: str, problems: Sequence[Problem], responses: Sequence[str],
                   timeout: float | None = None) -> list[dict[str, Any]]:
    """The harness's verdict fields for each (problem, response) pair, in order; `timeout` per sympy
    comparison defaults to the harness's own (`reward.harness.TIMEOUT`)."""
    from oneshot_rlvr.reward import harness

    timeout = harness.TIMEOUT if timeout is None else timeout
    golds = [harness_gold(p, benchmark) for p in problems]
    verdicts = harness.grade_batch(golds, responses, benchmark, timeout=timeout)
    return [{"harness_correct": v.correct, "harness_answer": v.answer, "harness_timed_out": v.timed_out}
            for v in verdicts]


def accuracy_cell(res: dict[str, Any] | Any, name: str, grader: str) -> str:
    """One table cell: accuracy in percent under the grader; `both` gives "harness (ours)"."""
    if name == "_avg":
        ours, harness = res.get("average", {}), res.get("harness_average", {})
        ours_value = ours.get("accuracy") if ours.get("complete") else None
        harness_value = harness.get("harness_accuracy") if harness.get("complete") else None
    else:
        bench = res.get("benchmarks", {}).get(name)
        if not bench:
            return "-"
        ours_value, harness_value = bench.get("accuracy"), bench.get("harness_accuracy")
    if grader == "ours":
        return _percent(ours_value)
    if grader == "harness":
        return _percent(harness_value)
    if harness_value is None:  # a choice benchmark (ARC) has our verdict only
        return _percent(ours_value)
    return f"{_percent(harness_value)} ({_percent(ours_value)})"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
