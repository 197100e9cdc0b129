"""Sampling processes on CPU: the rows of a rollout batch decoded side by side by several `FastLM`s.

A small model's decode step on CPU is bound by the fixed cost of its many small kernels, not by the
arithmetic: one process decoding 64 rows with two threads takes as long as with one thread, and the
second core idles. Processes that each decode a slice of the rows do use it (measured on the
benchmark model, 2 vCPUs: 64 rows x 128 tokens in 0.70-0.84x the time with two processes of 32 rows;
within a whole training step on that machine the gain was lost in its noise, so it is opt-in).
Threads would not: the per-kernel work holds the interpreter lock.

The weights live once, in shared memory, and the trainer's `FastLM.refresh` updates them in place;
each helper process keeps only its own oneDNN-packed copies, which it redoes when the weights move.
Each slice is decoded with its own seed, drawn from the caller's generator, so a rollout is
reproducible for a given number of processes.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.multiprocessing as mp

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.rollout.base import SamplingParams
from oneshot_rlvr.rollout.decode import Processor, decode
from oneshot_rlvr.rollout.fastpath import FastLM, prefilled_step


@dataclass
class DecodeJob:
    """One slice of a rollout batch: left-padded prompt rows and how to sample them."""

    ids: torch.Tensor
    mask: torch.Tensor
    sampling: SamplingParams
    stop_ids: list[int]
    pad_id: int
    seed: int
    shared: tuple[torch.Tensor, torch.Tensor] | None = None
    """(first row of each distinct prompt, each row's prompt slot): prefill each distinct prompt once."""
    processors: list[Processor] = field(default_factory=list)


def run_job(lm: FastLM, job: DecodeJob) -> torch.Tensor:
    """(rows, R) response tokens of one slice (see `decode`)."""
    torch.manual_seed(job.seed)
    step = prefilled_step(lm, job.ids, job.mask, job.sampling.max_new_tokens, job.shared)
    return decode(step, job.ids, job.mask, job.sampling, job.stop_ids, job.pad_id,
                  prefilled=job.shared is not None, processors=job.processors or None)


def _helper(lm: FastLM, conn: Any, threads: int) -> None:
    """A helper process: decode the jobs it receives until it receives None."""
    torch.set_num_threads(threads)
    version = -1
    while True:
        message = conn.recv()
        if message is None:
            return
        job_version, job = message
        try:
            if job_version != version:  # the shared weights moved: redo this process's packed copies
                lm._repack()
                version = job_version
            conn.send(("ok", run_job(lm, job)))
        except Exception as err:  # reported to the parent, which raises it
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


def _shutdown(procs: list[Any], conns: list[Any]) -> None:
    for conn in conns:
        with contextlib.suppress(OSError):  # (a helper that died already)
            conn.send(None)
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()


class SamplerPool:
    """`processes - 1` helper processes beside this one, decoding from `lm`'s weights in shared memory.

    `lm` must own its tensors (`FastLM.from_model(..., copy=True)`): they are moved to shared memory.
    Call `weights_changed` after each `lm.refresh`, and `close` (or drop the pool) when done.
    """

    def __init__(self, lm: FastLM, processes: int):
        if processes < 2:
            raise ValueError(f"a sampler pool needs at least 2 processes, got {processes}")
        self.lm, self.processes = lm, processes
        self.threads = max(1, (os.cpu_count() or 1) // processes)
        lm.share_memory()
        portable = copy.copy(lm)
        portable.layers = [copy.copy(layer) for layer in lm.layers]
        for layer in portable.layers:
            layer.packed = {}  # packed copies are per process (and not shareable)
        portable.head_packed = None
        ctx = mp.get_context("spawn")  # fork would copy this process's thread pools and locks
        self._conns, self._procs = [], []
        for _ in range(processes - 1):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_helper, args=(portable, child, self.threads), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._version = 0
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)

    def weights_changed(self) -> None:
        """The shared weights were refreshed: helpers redo their packed copies before the next job."""
        self._version += 1

    def run(self, jobs: list[DecodeJob]) -> list[torch.Tensor]:
        """Each job's response tokens: the first job runs here, the others in helpers, all at once."""
        if len(jobs) > self.processes:
            raise ValueError(f"{len(jobs)} jobs for {self.processes} processes")
        for index, (conn, job) in enumerate(zip(self._conns, jobs[1:], strict=False)):
            try:
                conn.send((self._version, job))
            except OSError as err:  # (BrokenPipeError: the helper is gone)
                raise self._died(index) from err
            except (pickle.PicklingError, AttributeError, TypeError) as err:
                self.close()  # the jobs already sent would be answered into pipes nobody reads
                raise RlvrError(f"sampling processes need picklable logits processors (a module-level class, not a "
                                f"lambda or local function): {err}") from err
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            first = run_job(self.lm, jobs[0])
        finally:
            torch.set_num_threads(threads)
            # Collect every helper's answer even after a failure here, so none is left in a pipe.
            answers = [self._receive(i, conn) for i, conn in enumerate(self._conns[: len(jobs) - 1])]
        failed = [text for status, text in answers if status == "error"]
        if failed:
            raise RuntimeError(f"a sampling process failed: {failed[0]}")
        return [first] + [out for _, out in answers]

    def _receive(self, index: int, conn: Any) -> tuple[str, Any]:
        try:
            answer: tuple[str, Any] = conn.recv()
            return answer
        except (EOFError, OSError) as err:
            raise self._died(index) from err

    def _died(self, index: int) -> RlvrError:
        self._procs[index].join(timeout=1)
        code = self._procs[index].exitcode
        self.close()
        return RlvrError(f"sampling process {index + 1} died (exit code {code}); the pool is closed, and the "
                         "next rollout starts a new one")

    @property
    def closed(self) -> bool:
        """The helpers were stopped (by `close`, or after one of them died)."""
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()


def split_rows(rows: int, parts: int) -> list[slice]:
    """`rows` in at most `parts` contiguous slices of near-equal size (none empty)."""
    parts = max(1, min(parts, rows))
    base, extra = divmod(rows, parts)
    out, start = [], 0
    for k in range(parts):
        size = base + (1 if k < extra else 0)
        out.append(slice(start, start + size))
        start += size
    return out


__all__ = ["DecodeJob", "SamplerPool", "run_job", "split_rows"]
