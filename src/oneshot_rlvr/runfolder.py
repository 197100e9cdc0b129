"""The run folder, the interface between commands: its layout, the one atomic writer, and its readers.

```
RUN/config.yaml                 the resolved settings (what ran)
RUN/metrics.jsonl               one row per training step; it is what makes a folder a run
RUN/history.json                per-example accuracy, one value per finished epoch
RUN/checkpoints/step_N/         Hugging Face model + tokenizer, and the trainer state in the newest ones
RUN/validation/step_N.jsonl     per-response records of validation at step N
RUN/eval/<step>/results.json    benchmark results (and records.jsonl beside them)
RUN/report/index.html           the report page (PNG plots in index_files/)
```

Training, `rlvr eval --run`, `rlvr report`, the demo and `rlvr select` name these files only through here.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from oneshot_rlvr.errors import RlvrError

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
HISTORY = "history.json"
CHECKPOINTS = "checkpoints"
VALIDATION = "validation"
EVAL = "eval"
REPORT = "report"
RESULTS = "results.json"
RECORDS = "records.jsonl"
STEP_PREFIX = "step_"


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (nothing is created or read by naming them)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def history(self) -> Path:
        return self.path / HISTORY

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def validation(self) -> Path:
        return self.path / VALIDATION

    @property
    def evals(self) -> Path:
        return self.path / EVAL

    @property
    def report(self) -> Path:
        return self.path / REPORT / "index.html"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"{STEP_PREFIX}{step}"

    def validation_file(self, step: int) -> Path:
        return self.validation / f"{STEP_PREFIX}{step}.jsonl"

    def eval_dir(self, step: int | str) -> Path:
        return self.evals / str(step)

    def holds_run(self) -> bool:
        return self.metrics.exists()


Writer = Callable[[IO[bytes]], None]


def write_atomic(path: Path, data: str | bytes | Writer) -> None:
    """Write `path` whole or not at all: into a temporary file beside it, flushed to disk, then renamed over it.

    `data` is text (UTF-8), bytes, or a function that writes into the open binary file (torch.save, rows)."""
    # A name of its own per writer (not mkstemp: its files are owner-only, these take the umask like any other).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("xb") as f:
            if isinstance(data, str):
                f.write(data.encode("utf-8"))
            elif isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a crash never leaves an empty file in its place
        publish(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(tmp: Path, final: Path) -> None:
    """Rename a finished temporary file or folder into place (atomic on one file system)."""
    os.replace(tmp, final)


def read_json(path: Path) -> Any:
    """A JSON file; invalid JSON is an error naming the file and line."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RlvrError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a line that is not a JSON object is an error naming file and line."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RlvrError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise RlvrError(f"{path}, line {number}: expected a JSON object")
            rows.append(row)
    return rows
