"""Answer equivalence on top of math-verify, with hard time limits that work in any thread.

A grade goes through two stages:
1. the fast path, in the calling process: normalised string equality, exact numeric comparison,
   letter choices, times of day and word answers; it decides most answers in microseconds;
2. otherwise sympy (math-verify) in a worker process that is killed when it runs past the limit.

Golds arrive as bare strings ("2x + 3", "\\frac{4}{3}", "(1,2]"); they are parsed as a whole, never
searched for their last number.

`explain` / `explain_batch` give the reason with each verdict (a `Grade`), so a False that came from a
timeout or an error is never mistaken for a wrong answer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from oneshot_rlvr.reward import normalize as nz
from oneshot_rlvr.reward import pool as pool_outcomes
from oneshot_rlvr.reward.extract import answer_for_grading, box_group, check_text
from oneshot_rlvr.reward.pool import Task, WorkerPool

log = logging.getLogger(__name__)


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class Reason(str, Enum):
    """Why a grade came out the way it did."""

    EQUAL = "equal"
    """The answers are equivalent (the only reason with a True verdict)."""
    UNEQUAL = "unequal"
    """Both answers were read and they differ."""
    NO_ANSWER = "no-answer"
    """No final answer in the response (or no gold answer): nothing to compare."""
    UNPARSED = "unparsed"
    """An answer was found but sympy (math-verify) could not read it as mathematics."""
    TOO_LONG = "too-long"
    """An answer longer than `normalize.MAX_ANSWER_CHARS` (a runaway generation) that is not the gold verbatim."""
    TIMEOUT = "timeout"
    """The sympy comparison ran past `GraderConfig.timeout`; its worker was killed and replaced."""
    DEADLINE = "deadline"
    """The whole call's `batch_timeout` passed before this comparison finished."""
    ERROR = "error"
    """Grading raised (a bug or a sympy failure on strange input), or its worker process died."""


# Outcomes that tell nothing about the answers: never cached, always worth a warning.
_UNDECIDED = frozenset({Reason.TIMEOUT, Reason.DEADLINE, Reason.ERROR})
_POOL_REASONS = {
    "equal": Reason.EQUAL,
    "unequal": Reason.UNEQUAL,
    "unparsed": Reason.UNPARSED,
    "error": Reason.ERROR,
    pool_outcomes.TIMED_OUT: Reason.TIMEOUT,
    pool_outcomes.CRASHED: Reason.ERROR,
    pool_outcomes.UNFINISHED: Reason.DEADLINE,
}


@dataclass(frozen=True)
class Grade:
    """A verdict with its reason and the two answers that were compared."""

    ok: bool
    """The verdict: True only when `reason` is `Reason.EQUAL`."""
    reason: Reason
    gold: str | None
    """The gold answer compared (the content of its box when it has one), or None."""
    answer: str | None
    """The response's answer compared (see `extract.answer_for_grading`), or None."""


@dataclass(frozen=True)
class GraderConfig:
    """Settings of a `Grader`."""

    timeout: float = 2.0
    """Seconds one sympy comparison may take before its worker is killed (the grade is then False)."""
    workers: int = 0
    """Worker processes for sympy comparisons; 0 = one per available core, at most 8."""
    memory_limit_mb: int = 2048
    """Address-space limit of each worker (MiB); 0 = none. Runaway expressions fail instead of swapping."""
    cache_size: int = 65536
    """Sympy verdicts remembered across calls (training grades the same answers again and again)."""


def gold_answer(gold: str | None) -> str | None:
    """The gold answer as a string: the content of its last box (or box group) when it has one, else itself."""
    if not gold or not gold.strip():
        return None
    if "\\boxed" in gold or "\\fbox" in gold:
        return box_group(gold)
    return gold.strip()


def _same_time(gold: tuple[int, int, str], pred: tuple[int, int, str] | None) -> bool:
    if pred is None:
        return False
    if gold[2] and pred[2]:
        return gold == pred
    return gold[:2] == pred[:2]


@lru_cache(maxsize=32768)
def fast_reason(gold: str, answer: str) -> Reason | None:
    """Decide equivalence without sympy when the answers allow it; None means "ask sympy"."""
    if len(answer) > nz.MAX_ANSWER_CHARS or len(gold) > nz.MAX_ANSWER_CHARS:
        return Reason.EQUAL if gold == answer else Reason.TOO_LONG
    g, p = nz.normalize(gold), nz.normalize(answer)
    if not g.key or not p.key:
        return Reason.NO_ANSWER  # nothing left once delimiters, units and spacing are gone
    if g.key == p.key:
        return Reason.EQUAL
    if max(nz.nesting_depth(g.key), nz.nesting_depth(p.key)) > nz.MAX_NESTING:
        return Reason.UNPARSED  # 300 nested roots: no answer anyone writes, and seconds of parsing
    letter = nz.choice_letter(gold)
    if letter is not None:
        return _reason(nz.choice_letter(answer, strict=False) == letter)
    time_of_day = nz.clock_time(gold)
    if time_of_day is not None:
        return _reason(_same_time(time_of_day, nz.clock_time(answer)))
    gold_words = nz.words(gold)
    if gold_words is not None:
        return _reason(nz.loose_words(answer) == gold_words)
    if len(g.key) == 1 and len(p.key) == 1 and g.key.isalpha() and p.key.isalpha():
        return Reason.UNEQUAL  # different single letters (k and K are different variables; sympy folds case)
    same = nz.numbers_match(g, p)
    return None if same is None else _reason(same)


def fast_verdict(gold: str, answer: str) -> bool | None:
    """`fast_reason` as a verdict: True, False, or None for "ask sympy"."""
    reason = fast_reason(gold, answer)
    return None if reason is None else reason is Reason.EQUAL


def _reason(equal: bool) -> Reason:
    return Reason.EQUAL if equal else Reason.UNEQUAL


_WARNINGS = {
    Reason.TIMEOUT: "ran out of time",
    Reason.DEADLINE: "were cut off by the batch deadline",
    Reason.ERROR: "failed with an error",
}


def _task(gold: str, answer: str) -> Task:
    g, p = nz.normalize(gold), nz.normalize(answer)
    return (g.latex, p.latex, g.percent, p.percent)


class Grader:
    """Grades responses against gold answers; owns the worker pool and the verdict cache.

    Thread-safe. Call `close()` (or use it as a context manager) to stop its workers early; they are
    stopped at interpreter exit in any case.
    """

    def __init__(self, config: GraderConfig | None = None) -> None:
        self.config = config or GraderConfig()
        self._pool: WorkerPool | None = None
        self._pool_pid = os.getpid()
        self._cache: OrderedDict[Task, Reason] = OrderedDict()
        self._lock = threading.Lock()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pool(self) -> WorkerPool:
        """The worker pool, started on first use (and started afresh in a forked child)."""
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = WorkerPool(
                    self.config.workers or _default_workers(), memory_limit_mb=self.config.memory_limit_mb
                )
                self._pool_pid = os.getpid()
            return self._pool

    def close(self) -> None:
        """Stop the worker processes (a later grade starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()

    def verify(self, gold: str | None, response: str | None, *, require_boxed: bool = False) -> bool:
        """Whether the response's final answer is equivalent to the gold answer."""
        return self.explain(gold, response, require_boxed=require_boxed).ok

    def explain(self, gold: str | None, response: str | None, *, require_boxed: bool = False) -> Grade:
        """`verify` with its reason and the answers compared."""
        return self.explain_batch([gold], [response], require_boxed=require_boxed)[0]

    def verify_batch(
        self,
        golds: Sequence[str | None],
        responses: Sequence[str | None],
        *,
        require_boxed: bool = False,
        timeout: float | None = None,
        batch_timeout: float | None = None,
    ) -> list[bool]:
        """Grade responses[i] against golds[i] for every i, in parallel across worker processes.

        `timeout` limits each sympy comparison (None: `config.timeout`); `batch_timeout` limits the
        whole call (default: none, so the call takes at most about len / workers * timeout seconds
        even if every answer is pathological). Unfinished grades are False.
        """
        grades = self.explain_batch(
            golds, responses, require_boxed=require_boxed, timeout=timeout, batch_timeout=batch_timeout
        )
        return [g.ok for g in grades]

    def explain_batch(
        self,
        golds: Sequence[str | None],
        responses: Sequence[str | None],
        *,
        require_boxed: bool = False,
        timeout: float | None = None,
        batch_timeout: float | None = None,
    ) -> list[Grade]:
        """`verify_batch` with a `Grade` (verdict, reason, answers compared) per pair."""
        if len(golds) != len(responses):
            raise ValueError(f"{len(golds)} golds but {len(responses)} responses")
        limit = self.config.timeout if timeout is None else timeout
        deadline = None if batch_timeout is None else time.monotonic() + batch_timeout
        answers: list[tuple[str | None, str | None]] = []
        reasons: list[Reason] = [Reason.ERROR] * len(golds)
        slow: dict[Task, list[int]] = {}
        for i, (gold, response) in enumerate(zip(golds, responses, strict=True)):
            pair = (check_text(gold, "gold"), check_text(response, "response"))
            gold_text, answer, decided = self._decide(*pair, require_boxed)
            answers.append((gold_text, answer))
            if isinstance(decided, Reason):
                reasons[i] = decided
            else:
                slow.setdefault(decided, []).append(i)
        if slow:
            self._ask_sympy(slow, reasons, limit, deadline)
        return [Grade(r is Reason.EQUAL, r, g, a) for r, (g, a) in zip(reasons, answers, strict=True)]

    def _ask_sympy(
        self, slow: dict[Task, list[int]], reasons: list[Reason], limit: float, deadline: float | None
    ) -> None:
        tasks = list(slow)
        outcomes = [_POOL_REASONS[o] for o in self.pool.map(tasks, timeout=limit, deadline=deadline)]
        for task, reason in zip(tasks, outcomes, strict=True):
            for i in slow[task]:
                reasons[i] = reason
            if reason not in _UNDECIDED:
                self._remember(task, reason)
        for reason in (Reason.TIMEOUT, Reason.DEADLINE, Reason.ERROR):
            count = outcomes.count(reason)
            if count:
                log.warning("%d of %d sympy comparisons %s (limit %.1fs): graded False",
                            count, len(tasks), _WARNINGS[reason], limit)

    def _decide(
        self, gold: str | None, response: str | None, require_boxed: bool
    ) -> tuple[str | None, str | None, Reason | Task]:
        """(gold answer, response answer, the reason from the fast path or the cache, else the sympy task)."""
        gold_text = answer = None
        try:
            gold_text = gold_answer(gold)
            answer = answer_for_grading(response, require_boxed=require_boxed)
            if gold_text is None or answer is None:
                return gold_text, answer, Reason.NO_ANSWER
            fast = fast_reason(gold_text, answer)
            if fast is not None:
                return gold_text, answer, fast
            task = _task(gold_text, answer)
        except Exception:  # a bug on strange input must not crash training: that answer is wrong
            log.warning("grading failed on gold %r", (gold or "")[:80], exc_info=True)
            return gold_text, answer, Reason.ERROR
        with self._lock:
            cached = self._cache.get(task)
            if cached is not None:
                self._cache.move_to_end(task)
                return gold_text, answer, cached
        return gold_text, answer, task

    def _remember(self, task: Task, reason: Reason) -> None:
        if self.config.cache_size <= 0:
            return
        with self._lock:
            self._cache[task] = reason
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)


_default: Grader | None = None
_default_lock = threading.Lock()


def default_grader() -> Grader:
    """The process-wide grader behind `verify`, `verify_batch` and `math_reward`."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Grader()
        return _default


def configure(config: GraderConfig) -> Grader:
    """Replace the default grader (stopping the old one's workers), e.g. to set fewer workers per rank."""
    global _default
    with _default_lock:
        old, _default = _default, Grader(config)
    if old is not None:
        old.close()
    return _default


def close() -> None:
    """Stop the default grader's worker processes (they also stop at interpreter exit)."""
    with _default_lock:
        grader = _default
    if grader is not None:
        grader.close()


def verify(gold: str | None, response: str | None, *, require_boxed: bool = False) -> bool:
    """Is the response's final answer equivalent to the gold answer?

    The answer is the last `\\boxed{}` (only that when `require_boxed`), else the text after "the
    answer is", else the whole response when it is a bare one-line answer, else its last number.
    None or empty input is False; a non-string is a TypeError.
    """
    return default_grader().verify(gold, response, require_boxed=require_boxed)


def verify_batch(
    golds: Sequence[str | None],
    responses: Sequence[str | None],
    *,
    require_boxed: bool = False,
    timeout: float | None = None,
    batch_timeout: float | None = None,
) -> list[bool]:
    """`verify` for many pairs at once, in parallel worker processes.

    Each sympy comparison runs under `timeout` seconds; None (the default) means the default grader's
    `GraderConfig.timeout` (set it with `configure`).
    """
    return default_grader().verify_batch(
        golds, responses, require_boxed=require_boxed, timeout=timeout, batch_timeout=batch_timeout
    )


def explain(gold: str | None, response: str | None, *, require_boxed: bool = False) -> Grade:
    """`verify` with the reason for its verdict and the two answers it compared."""
    return default_grader().explain(gold, response, require_boxed=require_boxed)


def explain_batch(
    golds: Sequence[str | None],
    responses: Sequence[str | None],
    *,
    require_boxed: bool = False,
    timeout: float | None = None,
    batch_timeout: float | None = None,
) -> list[Grade]:
    """`verify_batch` with a `Grade` (verdict, reason, answers compared) per pair."""
    return default_grader().explain_batch(
        golds, responses, require_boxed=require_boxed, timeout=timeout, batch_timeout=batch_timeout
    )


def math_reward(response: str | None, gold: str | None) -> float:
    """The training reward: 1.0 when the last `\\boxed{}` of the response matches the gold, else 0.0."""
    return 1.0 if verify(gold, response, require_boxed=True) else 0.0
