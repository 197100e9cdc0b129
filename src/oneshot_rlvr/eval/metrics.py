"""Benchmark metrics from per-response records: accuracy, avg@k, unbiased pass@k, format, lengths.

Pure functions: records in, numbers out. A record is one response (see `eval.run`): it carries
`problem_index`, `correct` (lenient grader), `strict_correct` (boxed answer only), `boxed`, `tokens`,
`finish_reason` and `reflection` (word counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oneshot_rlvr.eval.analysis import mean, reflection_summary


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with c correct among n samples (Chen et al., 2021).

    1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k / i), which never forms the
    huge binomials. Equals c / n for k = 1, and 1 when fewer than k samples are wrong.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_ks(n: int) -> list[int]:
    """k values reported for n samples: the powers of two up to n, and n itself."""
    ks = []
    k = 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks


def verdicts_by_problem(records: Sequence[Mapping[str, Any]], key: str = "correct") -> list[list[bool]]:
    """Verdicts grouped by `problem_index`, problems in first-seen order."""
    groups: dict[Any, list[bool]] = {}
    for r in records:
        groups.setdefault(r["problem_index"], []).append(bool(r[key]))
    return list(groups.values())


def mean_pass_at_k(groups: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; every problem needs at least k samples."""
    if not groups:
        return 0.0
    return mean(pass_at_k(len(g), sum(g), k) for g in groups)


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of one benchmark from its records.

    Keys: problems, responses, samples_per_problem, accuracy (lenient, = avg@n), strict_accuracy,
    avg@n, pass@k for k in `pass_ks(n)`, format_rate, mean_response_tokens, truncation_rate,
    reflection (see `analysis.reflection_summary`); harness_accuracy and harness_timeouts when the
    records carry the harness's verdicts.
    """
    groups = verdicts_by_problem(records)
    n = min((len(g) for g in groups), default=0)
    metrics: dict[str, Any] = {
        "problems": len(groups),
        "responses": len(records),
        "samples_per_problem": n,
        "accuracy": mean(float(r["correct"]) for r in records),
        "strict_accuracy": mean(float(r["strict_correct"]) for r in records),
    }
    if n:
        metrics[f"avg@{n}"] = metrics["accuracy"]
        for k in pass_ks(n):
            metrics[f"pass@{k}"] = mean_pass_at_k(groups, k)
    metrics.update(
        format_rate=mean(float(r["boxed"]) for r in records),
        mean_response_tokens=mean(float(r["tokens"]) for r in records),
        truncation_rate=mean(float(r["finish_reason"] == "length") for r in records),
        reflection=reflection_summary([r.get("reflection", {}) for r in records]),
    )
    if records and all("harness_correct" in r for r in records):  # graded under the harness rule too
        metrics["harness_accuracy"] = mean(float(r["harness_correct"]) for r in records)
        metrics["harness_timeouts"] = sum(bool(r.get("harness_timed_out")) for r in records)
    return metrics


def benchmark_average(per_benchmark: Mapping[str, Mapping[str, Any]], names: Sequence[str],
                      key: str = "accuracy") -> dict[str, Any]:
    """Unweighted mean of `key` over those of `names` present; `complete` says whether all were."""
    present = [n for n in names if n in per_benchmark]
    value = mean(float(per_benchmark[n][key]) for n in present) if present else None
    return {key: value, "benchmarks": present, "complete": len(present) == len(names)}
