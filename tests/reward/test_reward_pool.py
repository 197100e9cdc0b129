"""The worker pool: stuck sympy calls are killed and replaced, any thread may grade, nothing leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oneshot_rlvr.reward import Grader, GraderConfig, Reason, configure, default_grader, verify, verify_batch
from oneshot_rlvr.reward.pool import WorkerPool

TOWER = r"\boxed{10^{10^{10^{10}}}}"  # sympy would spend hours on it
SYMBOLIC = (r"x^2+2x+1", r"\boxed{(x+1)^2}")  # needs sympy, not the fast path


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_gone(pids: list[int], within: float = 10.0) -> list[int]:
    # polls for a process to go away; the bound only ends the wait, it asserts nothing about speed
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    with Grader(GraderConfig(workers=1, timeout=1.0, cache_size=0)) as g:
        yield g


def test_a_stuck_call_is_killed_and_its_worker_replaced(grader: Grader, caplog: pytest.LogCaptureFixture) -> None:
    assert grader.verify(*SYMBOLIC) is True
    before, replaced = grader.pool.pids, grader.pool.replaced
    grades = grader.explain_batch(["1", SYMBOLIC[0]], [TOWER, SYMBOLIC[1]])
    assert [(g.ok, g.reason) for g in grades] == [(False, Reason.TIMEOUT), (True, Reason.EQUAL)]
    assert "1 of 2 sympy comparisons ran out of time" in caplog.text
    assert grader.pool.replaced == replaced + 1
    after = grader.pool.pids
    assert len(after) == 1 and after != before
    assert _wait_gone(before) == []


def test_a_worker_that_died_while_idle_is_replaced_without_blame(grader: Grader) -> None:
    assert grader.verify(*SYMBOLIC) is True
    (pid,) = grader.pool.pids
    os.kill(pid, signal.SIGKILL)
    assert _wait_gone([pid]) == []
    assert grader.verify(*SYMBOLIC) is True
    assert grader.pool.pids != [pid]


def test_grading_from_other_threads(grader: Grader) -> None:
    golds = ["2x + 3", r"\frac{1}{2}", "(1,2]", "7"]
    responses = [r"\boxed{3+2x}", r"\boxed{0.5}", r"\boxed{[1,2]}", "the answer is 8"]
    results: dict[int, list[bool]] = {}

    def work(i: int) -> None:
        results[i] = grader.verify_batch(golds, responses)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {i: [True, True, False, False] for i in range(4)}


def test_close_stops_the_workers_and_a_later_grade_restarts_them() -> None:
    grader = Grader(GraderConfig(workers=2))
    assert grader.verify(*SYMBOLIC) is True
    pids = grader.pool.pids
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    grader.close()
    assert _wait_gone(pids) == []
    assert grader.verify(*SYMBOLIC) is True
    grader.close()


def test_configure_replaces_the_default_grader() -> None:
    old = default_grader()
    try:
        new = configure(GraderConfig(workers=1, timeout=3.0))
        assert default_grader() is new and new is not old
        assert verify(*SYMBOLIC) is True
        assert new.pool.size == 1
    finally:
        configure(GraderConfig())


def test_pool_rejects_a_bad_size() -> None:
    with pytest.raises(ValueError, match="pool size"):
        WorkerPool(0)


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from oneshot_rlvr.reward import default_grader, verify_batch
    assert verify_batch(["x^2+2x+1"], ["(x+1)^2"]) == [True]
    print("PIDS", *default_grader().pool.pids, flush=True)
    if sys.argv[1] == "hang":
        verify_batch(["1"], [r"\\boxed{10^{10^{10^{10}}}}"], timeout=600)
    """
)


def _run_script(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "grade_and_exit.py"
    script.write_text(_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), line
    return proc, [int(p) for p in line.split()[1:]]


def test_no_worker_outlives_a_normal_exit(tmp_path: Path) -> None:
    proc, pids = _run_script(tmp_path, "exit")
    assert proc.wait(timeout=60) == 0
    assert pids and _wait_gone(pids) == []


def test_no_worker_outlives_a_killed_parent_even_mid_task(tmp_path: Path) -> None:
    proc, pids = _run_script(tmp_path, "hang")
    time.sleep(1.0)  # let one worker start on the endless task
    proc.kill()
    proc.wait(timeout=10)
    assert pids and _wait_gone(pids) == []


def test_a_worker_environment_that_cannot_start_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # every worker exits at once
    pool = WorkerPool(1)
    with pytest.raises(RuntimeError, match="fail to start"):
        pool.map([("x", "x+0", False, False)], timeout=1.0)
    assert pool.pids == []


def test_an_interrupted_call_leaves_no_stale_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import oneshot_rlvr.reward.pool as pool_module

    pool = WorkerPool(1)
    pool.start()
    raised = []
    original = pool_module._Run._reap

    def interrupt_once(self: pool_module._Run, now: float) -> None:
        if not raised and any(w.inflight for w in self.pool._workers):
            raised.append(now)
            raise KeyboardInterrupt
        original(self, now)

    monkeypatch.setattr(pool_module._Run, "_reap", interrupt_once)
    slow = ("x^2+2x+1", "(x+1)^2", False, False)
    with pytest.raises(KeyboardInterrupt):
        for _ in range(50):  # until the interrupt lands while a task is in flight
            pool.map([slow] * 4, timeout=5.0)
    # the same indexes now mean different tasks: answers of the interrupted call must not leak in
    assert pool.map([("x", "y", False, False)] * 4, timeout=5.0) == ["unequal"] * 4
    pool.close()


_FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from oneshot_rlvr.reward import default_grader, verify
    assert verify("x^2+2x+1", "(x+1)^2")
    parent_workers = default_grader().pool.pids
    child = os.fork()
    if child == 0:  # grades with its own workers, and leaves the parent's alone when it exits
        assert verify("x^2-1", "(x-1)(x+1)")
        assert set(default_grader().pool.pids).isdisjoint(parent_workers)
        sys.exit(0)
    _, status = os.waitpid(child, 0)
    assert status == 0, status
    assert default_grader().pool.pids == parent_workers
    assert all(os.path.exists(f"/proc/{p}") for p in parent_workers)
    assert verify("a+b", "b+a")
    print("ok")
    """
)


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc").exists(), reason="needs fork and /proc")
def test_a_forked_child_grades_with_its_own_workers(tmp_path: Path) -> None:
    script = tmp_path / "fork.py"
    script.write_text(_FORK_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_time_limit_comes_from_the_grader_config(monkeypatch: pytest.MonkeyPatch) -> None:
    limits: list[float] = []

    def record(self: WorkerPool, tasks: list[object], *, timeout: float, deadline: float | None = None) -> list[str]:
        limits.append(timeout)
        return ["equal"] * len(tasks)

    monkeypatch.setattr(WorkerPool, "map", record)
    grader = Grader(GraderConfig(timeout=7.5, workers=1, cache_size=0))
    assert grader.verify(*SYMBOLIC) is True
    assert grader.verify_batch([SYMBOLIC[0]], [SYMBOLIC[1]], timeout=0.5) == [True]  # an explicit override
    old = default_grader()
    try:
        configure(GraderConfig(timeout=4.5, workers=1, cache_size=0))
        assert verify(*SYMBOLIC) is True
        assert verify_batch([SYMBOLIC[0]], [SYMBOLIC[1]]) == [True]
    finally:
        configure(old.config)
    assert limits == [7.5, 0.5, 4.5, 4.5]
