"""The run folder's logs: `metrics.jsonl` (one row per step), `history.json`, progress output."""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from oneshot_rlvr.runfolder import write_atomic
from oneshot_rlvr.tracking import Tracker

log = logging.getLogger("oneshot_rlvr.train")


class MetricsLog:
    """Appends one JSON row per step; on resume, rows past the checkpoint are dropped first. Each row also goes
    to the live trackers of `report_to` (`oneshot_rlvr.tracking`), at the moment it is written here."""

    def __init__(self, path: Path, resume_step: int | None = None, tracker: Tracker | None = None):
        self.path = path
        self.tracker = tracker or Tracker({})
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            write_atomic(path, "".join(line + "\n" for line in kept))

    def append(self, row: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
        self.tracker.log(row)

    def close(self) -> None:
        self.tracker.close()


class Timer:
    """Wall-clock seconds per named phase of a step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def progress_line(row: dict[str, Any]) -> str:
    parts = [f"step {row['step']}", f"reward {row['reward_mean']:.3f}", f"entropy {row['entropy']:.3f}",
             f"kl {row['kl']:.4f}", f"len {row['response_length_mean']:.0f}", f"{row['time_step']:.1f}s"]
    if "val_accuracy" in row:
        parts.append(f"val {row['val_accuracy']:.3f}")
    return " | ".join(parts)
