"""A pool of grading worker processes with a hard time limit per task.

Workers are fresh interpreters (`python -m oneshot_rlvr.reward._worker`, spawn semantics): nothing
is forked from a caller that may hold torch, CUDA or OpenMP threads, and the caller's main script is
never re-imported. A task that runs past its limit gets its worker killed (SIGKILL) and replaced;
the task gets the outcome `TIMED_OUT`. Workers exit when the pool closes, when the interpreter exits
(a finalizer), when the parent's pipe closes, or (Linux) when the parent dies.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from typing import Literal

log = logging.getLogger(__name__)

# (gold latex, predicted latex, gold is a percentage, prediction is a percentage); see `_worker.judge`.
# The worker module itself is never imported here: it runs as `python -m` in the worker processes.
Task = tuple[str, str, bool, bool]
# ("harness", prediction, gold, benchmark): the evaluation harness's rule (`harness_equal`). With a
# benchmark name, the prediction is a whole response still to be read; with "", the read answer.
HarnessTask = tuple[Literal["harness"], str, str, str]

# A task's outcome is the worker's answer ("equal", "unequal", "unparsed" or "error", see `_worker.judge`),
# or one of these when the worker could not answer:
TIMED_OUT = "timeout"
"""The task ran past its time limit; its worker was killed and replaced."""
CRASHED = "crashed"
"""The worker died while running the task (a signal, the memory limit, a broken pipe)."""
UNFINISHED = "deadline"
"""The call's deadline passed before the task finished (or started)."""

_MAX_CHUNK = 16
_MAX_START_FAILURES = 3

# Linux delivers the workers' parent-death signal when the *thread* that started them exits, so they
# are started from one long-lived thread rather than from whichever thread asked for a grade.
_spawner: concurrent.futures.ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _spawn_thread() -> concurrent.futures.ThreadPoolExecutor:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rlvr-grader-spawn")
        return _spawner


def _forget_spawner_after_fork() -> None:
    # Threads do not survive fork: the child's executor would wait forever for its dead thread.
    global _spawner, _spawner_lock
    _spawner, _spawner_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_spawner_after_fork)


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    inbox: Connection  # parent -> worker
    outbox: Connection  # worker -> parent
    started: float
    ready: bool = False
    busy_since: float = 0.0
    inflight: deque[tuple[int, int]] = field(default_factory=deque)  # (run id, task index), in order


def _start_worker(memory_limit_mb: int) -> _Worker:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    argv = [str(to_child_r), str(from_child_w), str(os.getpid()), str(memory_limit_mb)]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oneshot_rlvr.reward._worker", *argv],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    finally:
        os.close(to_child_r)
        os.close(from_child_w)
    inbox = Connection(to_child_w, readable=False)
    outbox = Connection(from_child_r, writable=False)
    return _Worker(proc, inbox, outbox, started=time.monotonic())


def _stop_worker(worker: _Worker, *, graceful: bool) -> None:
    if graceful:
        with contextlib.suppress(OSError):
            worker.inbox.send(None)
    for conn in (worker.inbox, worker.outbox):
        with contextlib.suppress(OSError):
            conn.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.proc.wait(timeout=1.0 if graceful else 0.0)
    if worker.proc.poll() is None:
        worker.proc.kill()
        worker.proc.wait()


def _stop_all(workers: list[_Worker], owner_pid: int) -> None:
    if os.getpid() != owner_pid:
        return  # a forked child: these are its parent's workers, not its own
    for worker in workers:
        _stop_worker(worker, graceful=True)
    workers.clear()


class WorkerPool:
    """Runs `_worker.equivalent` (or the harness rule) on tasks in worker processes, each task under a hard time limit.

    Thread-safe: concurrent `map` calls run one after another. Not fork-safe: a forked child must
    build its own pool (the `Grader` does this by itself).
    """

    def __init__(self, size: int, *, memory_limit_mb: int = 2048, start_timeout: float = 60.0) -> None:
        if size < 1:
            raise ValueError(f"pool size must be >= 1, got {size}")
        self.size = size
        self.memory_limit_mb = memory_limit_mb
        self.start_timeout = start_timeout
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._start_failures = 0
        self._runs = 0
        self._replaced = 0
        self._owner_pid = os.getpid()
        self._finalizer = weakref.finalize(self, _stop_all, self._workers, self._owner_pid)

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        return [w.proc.pid for w in self._workers]

    def start(self) -> None:
        """Start the workers now (they take about a second to import sympy)."""
        with self._lock:
            self._fill()

    def close(self) -> None:
        """Stop every worker; a later `map` starts new ones."""
        with self._lock:
            _stop_all(self._workers, self._owner_pid)

    def _fill(self) -> None:
        while len(self._workers) < self.size:
            future = _spawn_thread().submit(_start_worker, self.memory_limit_mb)
            self._workers.append(future.result())

    def _replace(self, worker: _Worker) -> None:
        self._replaced += 1
        _stop_worker(worker, graceful=False)
        self._workers.remove(worker)
        self._fill()

    @property
    def replaced(self) -> int:
        """How many workers were killed or found dead and replaced so far (a stuck task, a crash)."""
        return self._replaced

    def map(
        self, tasks: Sequence[Task | HarnessTask], *, timeout: float, deadline: float | None = None
    ) -> list[str]:
        """Outcome per task: the worker's answer, or `TIMED_OUT`, `CRASHED` or `UNFINISHED`.

        `timeout` limits each task (seconds of wall time in a worker); `deadline` (a
        `time.monotonic()` value) limits the whole call: tasks not finished by then are `UNFINISHED`.
        """
        with self._lock:
            self._runs += 1
            for worker in [w for w in self._workers if w.inflight]:
                self._replace(worker)  # left busy by an interrupted call: its state is unknown
            self._fill()
            run = _Run(self, self._runs, tasks, timeout, deadline)
            try:
                return run.loop()
            except BaseException:
                for worker in [w for w in self._workers if w.inflight]:
                    _stop_worker(worker, graceful=False)
                    self._workers.remove(worker)
                raise


class _Run:
    """The scheduling loop of one `WorkerPool.map` call."""

    def __init__(
        self, pool: WorkerPool, run_id: int, tasks: Sequence[Task | HarnessTask], timeout: float, deadline: float | None
    ):
        self.pool = pool
        self.run_id = run_id
        self.tasks = tasks
        self.timeout = timeout
        self.deadline = deadline
        self.results: list[str] = [UNFINISHED] * len(tasks)
        self.pending: deque[int] = deque(range(len(tasks)))

    def loop(self) -> list[str]:
        workers = self.pool._workers
        while self.pending or any(w.inflight for w in workers):
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                for worker in [w for w in workers if w.inflight]:
                    log.warning("grading deadline passed: stopping a busy worker")
                    self.pool._replace(worker)
                break
            self._dispatch(now)
            ready = mp_connection.wait([w.outbox for w in workers], timeout=self._wait_time(now))
            for conn in ready:
                owner = next((w for w in workers if w.outbox is conn), None)
                if owner is not None:
                    self._drain(owner)
            self._reap(time.monotonic())
        return self.results

    def _dispatch(self, now: float) -> None:
        n_workers = self.pool.size
        for worker in list(self.pool._workers):
            if not self.pending or not worker.ready or worker.inflight:
                continue
            size = max(1, min(_MAX_CHUNK, len(self.pending) // (2 * n_workers)))
            chunk = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
            keys = [(self.run_id, i) for i in chunk]
            try:
                worker.inbox.send([(key, self.tasks[key[1]]) for key in keys])
            except OSError:
                self.pending.extendleft(reversed(chunk))  # it died while idle: no task to blame
                self.pool._replace(worker)
                continue
            worker.inflight.extend(keys)
            worker.busy_since = now

    def _wait_time(self, now: float) -> float:
        limits = [self.deadline] if self.deadline is not None else []
        for w in self.pool._workers:
            if w.inflight:
                limits.append(w.busy_since + self.timeout)
            elif not w.ready:
                limits.append(w.started + self.pool.start_timeout)
        return max(0.0, min(limits, default=now + 1.0) - now) + 0.001

    def _drain(self, worker: _Worker) -> None:
        try:
            while worker.outbox.poll():
                message = worker.outbox.recv()
                if message[0] == "ready":
                    worker.ready = True
                    self.pool._start_failures = 0
                    continue
                key, verdict = message
                if worker.inflight and worker.inflight[0] == key:
                    worker.inflight.popleft()
                    self.results[key[1]] = str(verdict)
                worker.busy_since = time.monotonic()
        except (EOFError, OSError):
            self._fail(worker, blame=CRASHED if worker.ready else None)

    def _fail(self, worker: _Worker, *, blame: str | None) -> None:
        """Replace a dead or stuck worker; its running task (if any) gets the outcome `blame`."""
        inflight = [i for _, i in worker.inflight]
        if blame is not None and inflight:
            self.results[inflight[0]] = blame
            inflight = inflight[1:]
        self.pending.extendleft(reversed(inflight))
        if not worker.ready:
            self.pool._start_failures += 1
            if self.pool._start_failures >= _MAX_START_FAILURES:
                self.pool._start_failures = 0
                _stop_all(self.pool._workers, os.getpid())
                raise RuntimeError(
                    "grading worker processes fail to start (`python -m oneshot_rlvr.reward._worker`); "
                    "check that sympy and math-verify import in a fresh interpreter"
                )
        self.pool._replace(worker)

    def _reap(self, now: float) -> None:
        for worker in list(self.pool._workers):
            if worker.inflight and worker.ready and now - worker.busy_since > self.timeout:
                log.debug("grading task over %.1fs: killing worker %d", self.timeout, worker.proc.pid)
                self._fail(worker, blame=TIMED_OUT)
            elif not worker.ready and now - worker.started > self.pool.start_timeout:
                self._fail(worker, blame=None)
