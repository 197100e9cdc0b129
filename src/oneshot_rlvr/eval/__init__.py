"""Evaluation: benchmark registry, batched evaluation with avg@k / pass@k, response analysis."""

from oneshot_rlvr.eval.benchmarks import (
    BENCHMARKS,
    PAPER_BENCHMARKS,
    Benchmark,
    Protocol,
    load_benchmark,
    parse_benchmark_list,
    user_benchmark,
)
from oneshot_rlvr.eval.curve import checkpoint_steps, evaluate_run
from oneshot_rlvr.eval.metrics import pass_at_k, summarize
from oneshot_rlvr.eval.run import (
    EvalOptions,
    evaluate_benchmarks,
    evaluate_problems,
    format_table,
    load_benchmarks,
)

__all__ = [
    "BENCHMARKS",
    "PAPER_BENCHMARKS",
    "Benchmark",
    "EvalOptions",
    "Protocol",
    "checkpoint_steps",
    "evaluate_benchmarks",
    "evaluate_problems",
    "evaluate_run",
    "format_table",
    "load_benchmark",
    "load_benchmarks",
    "parse_benchmark_list",
    "pass_at_k",
    "summarize",
    "user_benchmark",
]
