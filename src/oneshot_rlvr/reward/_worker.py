"""A grading worker process: sympy equivalence through math-verify, one task at a time.

Started by `pool.WorkerPool` as `python -m oneshot_rlvr.reward._worker READ_FD WRITE_FD PARENT_PID MEM_MB`.
It receives lists of `(key, task)` and answers `(key, outcome)` after each task, so the parent knows
which task is running and can kill the process when one takes too long. math-verify's own SIGALRM
time limits are switched off: the parent's kill is the limit, and it works from any thread.

An outcome says why, not only whether: "equal", "unequal" (both sides read, and they differ),
"unparsed" (math-verify could not read one side) or "error" (the comparison raised).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oneshot_rlvr.reward.pool import HarnessTask, Task


def _limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not every platform allows it; the time limit still applies


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies, even mid-computation in sympy."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(0)


@lru_cache(maxsize=1)
def _configs() -> list[Any]:
    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # Units are already stripped by `normalize`; math-verify's own unit list would also eat the
    # variable of answers like "4t" or "5m".
    normalization = NormalizationConfig(
        basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
    )
    return [LatexExtractionConfig(boxed_match_priority=0, normalization_config=normalization), ExprExtractionConfig()]


def _imaginary_unit(expr: Any) -> Any:
    """Read a free symbol `i` as the imaginary unit, so that e^{i\\pi} = -1 and (1+i)^2 = 2i."""
    from sympy import Basic, I

    if not isinstance(expr, Basic):
        return expr
    unit = [s for s in expr.free_symbols if getattr(s, "name", None) == "i"]
    return expr.subs({s: I for s in unit}) if unit else expr


@lru_cache(maxsize=8192)
def _parse(latex: str) -> list[Any]:
    from math_verify import parse

    # The answer is already extracted: wrapping it in $...$ makes math-verify read all of it
    # ("2x + 3" stays 2x + 3 instead of its last number).
    parsed = parse(f"${latex}$", _configs(), parsing_timeout=None)
    return [_imaginary_unit(p) for p in parsed]


def _percent_forms(parsed: list[Any], percent: bool) -> list[Any]:
    if not percent:
        return parsed
    from sympy import Basic, Rational

    return parsed + [p * Rational(1, 100) for p in parsed if isinstance(p, Basic)]


def _is_word(expr: Any) -> bool:
    """A symbol or product of symbols: math-verify compares those as words (`\\text{Devon}` = Devon)."""
    from sympy import E, Mul, Symbol

    return isinstance(expr, Symbol) or (
        isinstance(expr, Mul) and all(a == E or isinstance(a, Symbol) for a in expr.args)
    )


def clearly_different(gold: Any, pred: Any) -> bool:
    """Whether two exact expressions differ at sample points, so that no simplification can equate them.

    Decides most wrong symbolic answers in well under a millisecond instead of a `simplify` call.
    Decimals (math-verify's rounding rules), relations, sets, matrices and word-like symbols are
    left to math-verify. Sample points are positive, away from the usual branch cuts.
    """
    from sympy import Expr, Float, Rational

    if not (isinstance(gold, Expr) and isinstance(pred, Expr)) or _is_word(gold) or _is_word(pred):
        return False
    if gold.has(Float) or pred.has(Float):
        return False
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    if len(symbols) > 6:
        return False
    for trial in range(2 if symbols else 1):
        point = {s: Rational(61 + 17 * k + 29 * trial, 97) for k, s in enumerate(symbols)}
        try:
            g = complex(gold.subs(point).evalf(30))
            d = complex((gold - pred).subs(point).evalf(30))
        except (TypeError, ValueError, ArithmeticError):
            return False
        finite = all(abs(v) < 1e300 for v in (g, d))
        if not finite or abs(d) <= 1e-12 * max(1.0, abs(g)):
            return False
    return True


class _ErrorLog(logging.Handler):
    """Counts the exceptions math-verify swallows (it logs them and answers False)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.errors += 1


_math_verify_errors = _ErrorLog()


def _watch_math_verify() -> None:
    """Route math-verify's swallowed exceptions to `_math_verify_errors` and nowhere else."""
    logger = logging.getLogger("math_verify")
    logger.addHandler(_math_verify_errors)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


def judge(task: Task) -> str:
    """The outcome of comparing the predicted answer with the gold one under math-verify."""
    from math_verify import verify

    gold_latex, pred_latex, gold_percent, pred_percent = task
    gold = _parse(gold_latex)
    pred = _parse(pred_latex)
    if not gold or not pred:
        return "unparsed"
    if not (gold_percent or pred_percent) and (
        clearly_different(gold[0], pred[0]) or _one_undefined(gold[0], pred[0])
    ):
        return "unequal"
    gold = _percent_forms(gold, gold_percent)
    pred = _percent_forms(pred, pred_percent)
    errors_before = _math_verify_errors.errors
    if verify(gold, pred, timeout_seconds=None, allow_set_relation_comp=True):
        return "equal"
    # False because a comparison raised is not the same as False because the answers differ
    if _math_verify_errors.errors > errors_before:
        return "error"
    return "unequal" if _read_as_math(gold) and _read_as_math(pred) else "unparsed"


def _read_as_math(parsed: list[Any]) -> bool:
    """Whether math-verify read an answer as mathematics, not only kept its text (its fallback)."""
    from sympy import Basic, MatrixBase

    return any(isinstance(p, (Basic, MatrixBase)) for p in parsed)


def _one_undefined(gold: Any, pred: Any) -> bool:
    """Whether exactly one side is an undefined number (1/0, 0/0): then they differ, and sympy's
    comparison would only raise on it."""
    from sympy import Expr, nan, zoo

    def undefined(expr: Any) -> bool:
        return isinstance(expr, Expr) and (expr == zoo or expr is nan)

    return undefined(gold) != undefined(pred) and all(isinstance(e, Expr) and e.is_number for e in (gold, pred))


def equivalent(task: Task) -> bool:
    """Whether the predicted answer is equivalent to the gold one under math-verify."""
    return judge(task) == "equal"


def harness_equivalent(task: HarnessTask) -> bool:
    """The evaluation harness's verdict (see `reward.harness`), sympy step included."""
    from oneshot_rlvr.reward.harness_equal import math_equal, symbolic_equal
    from oneshot_rlvr.reward.harness_text import adjust_for_choice, extract, response_text

    _, prediction, gold, benchmark = task
    if benchmark:  # a whole response, too long to read in the parent
        prediction = adjust_for_choice(extract(prediction, benchmark), gold, response_text(prediction))
    return math_equal(prediction, gold, symbolic_equal)


def _safe_judge(task: Task | HarnessTask) -> str:
    try:
        if task[0] == "harness" and isinstance(task[2], str):
            return "equal" if harness_equivalent(task) else "unequal"
        return judge(task)  # type: ignore[arg-type]
    except (Exception, RecursionError, MemoryError):
        return "error"


def serve(inbox: Connection, outbox: Connection) -> None:
    """Answer task lists until the parent sends None or goes away."""
    while True:
        try:
            message = inbox.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        for key, task in message:
            outbox.send((key, _safe_judge(task)))


def main(argv: list[str]) -> int:
    read_fd, write_fd, parent_pid, memory_mb = (int(a) for a in argv)
    _die_with_parent(parent_pid)
    _limit_memory(memory_mb)
    logging.getLogger().setLevel(logging.CRITICAL)  # math-verify warns about its disabled alarms on every call
    _watch_math_verify()
    warnings.simplefilter("ignore")
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    _safe_judge(("\\frac{x}{2}", "x/2", False, False))  # import sympy, build the parser: untimed
    _safe_judge(("harness", "\\frac{x}{2}", "x/2", ""))
    try:
        outbox.send(("ready", os.getpid()))
        serve(inbox, outbox)
    except OSError:
        pass  # the parent went away: nothing left to answer
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
