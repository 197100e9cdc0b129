"""Ctrl-C during training: finish the step under way, checkpoint it, and say how to resume.

The first SIGINT only sets a flag that the loop reads between steps, so the checkpoint holds a whole step
(weights, optimizer, data position and history agree). A second Ctrl-C stops at once.
"""

from __future__ import annotations

import logging
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("oneshot_rlvr.train")


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C; the message names the checkpoint kept and how to resume."""


class StopRequest:
    """Whether Ctrl-C asked the loop to stop after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # a second Ctrl-C interrupts at once
        log.warning("Ctrl-C: finishing this step, then saving a checkpoint (press Ctrl-C again to stop now)")


@contextmanager
def stop_request() -> Iterator[StopRequest]:
    """A StopRequest fed by SIGINT while the block runs (in the main thread; elsewhere it stays unset)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    stop._previous = signal.signal(signal.SIGINT, stop._handle)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, stop._previous)


def resume_hint(out: Path, checkpoint: Path | None) -> str:
    """What an interrupted run keeps: its newest checkpoint and the command that continues from it."""
    if checkpoint is None:
        return f"no checkpoint was saved in {out}, so a rerun starts from step 0"
    return f"checkpoint {checkpoint} holds the run; continue with: rlvr train --resume {shlex.quote(str(out))}"
