"""Read a run folder (the interface between commands) into plain Python values for plots and pages.

Only the files matter, never the code that wrote them: `metrics.jsonl` (required: it is what makes a
folder a run), `config.yaml`, `history.json`, `validation/step_N.jsonl` and `eval/<step>/results.json`
(all optional). Nothing here imports torch or matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_rlvr import runfolder
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import RunFolder, read_json, read_jsonl

# The paper's six benchmarks in its table's order (the evaluation registry's PAPER_BENCHMARKS; kept here
# so that reading a run folder does not import the evaluation stack and torch).
PAPER_COLUMNS = (("math500", "MATH500"), ("aime24", "AIME24"), ("aime25", "AIME25"), ("amc23", "AMC23"),
                 ("minerva_math", "Minerva"), ("olympiadbench", "Olympiad"))

Series = tuple[list[int], list[float]]

SATURATION = 0.9
"""Training accuracy from which the example counts as saturated (the paper's >= 90%)."""


def first_reaching(points: Iterable[tuple[int, float]], threshold: float = SATURATION) -> int | None:
    """The first step of (step, value) points whose value reaches `threshold`; None when none does."""
    return next((step for step, value in points if value >= threshold), None)


@dataclass
class RunData:
    """Everything `rlvr report` reads from one run folder."""

    path: Path
    metrics: list[dict[str, Any]]
    """metrics.jsonl rows in file order (non-finite values were written as null)."""
    config: dict[str, Any] = field(default_factory=dict)
    """config.yaml, empty when absent."""
    history: dict[str, list[float]] = field(default_factory=dict)
    """history.json: example id -> accuracy per finished epoch."""
    evals: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(step, results.json) of every eval/<step>/, by step."""
    validation: list[tuple[int, Path]] = field(default_factory=list)
    """(step, validation/step_N.jsonl), by step."""

    def series(self, key: str) -> Series:
        """(steps, values) of a metrics key over the rows that have it; null (a non-finite value) is NaN."""
        steps, values = [], []
        for row in self.metrics:
            if key not in row or not isinstance(row.get("step"), int):
                continue
            value = row[key]
            if value is None:
                values.append(math.nan)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                values.append(float(value))
            else:
                continue
            steps.append(row["step"])
        return steps, values

    def saturation_step(self, threshold: float = SATURATION) -> int | None:
        """The first step whose training accuracy reached `threshold` (the example saturated); None if none did."""
        steps, values = self.series("train_accuracy")
        return first_reaching(zip(steps, values, strict=True), threshold)

    def has(self, key: str) -> bool:
        return bool(self.series(key)[0])

    def epoch_end_steps(self) -> list[int]:
        """Step at which each epoch finished: epoch i ends at the first step whose row's `epoch`
        (the data position after that step) is past i."""
        ends: list[int] = []
        for row in self.metrics:
            epoch, step = row.get("epoch"), row.get("step")
            if isinstance(epoch, int) and isinstance(step, int):
                while len(ends) < epoch:
                    ends.append(step)
        return ends

    def example_accuracy(self) -> dict[str, Series]:
        """Per training example: (steps, accuracy) from history.json, each epoch placed at its last step."""
        ends = self.epoch_end_steps()
        out: dict[str, Series] = {}
        for example, values in self.history.items():
            n = min(len(values), len(ends))
            if n:
                out[example] = (ends[:n], [float(v) for v in values[:n]])
        return out

    def eval_series(self, benchmark: str, key: str = "accuracy") -> Series:
        """(steps, value) of one benchmark's metric over eval/<step>/; benchmark "average" is the
        paper's six-benchmark mean, only at steps where all six were evaluated."""
        steps, values = [], []
        for step, results in self.evals:
            if benchmark == "average":
                avg = results.get("average") or {}
                value = avg.get(key) if avg.get("complete") else None
            else:
                value = (results.get("benchmarks", {}).get(benchmark) or {}).get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                steps.append(step)
                values.append(float(value))
        return steps, values

    def eval_benchmarks(self) -> list[tuple[str, str]]:
        """(name, column label) of every evaluated benchmark: the paper's six first, in its order."""
        seen: dict[str, str] = {}
        for _, results in self.evals:
            for name, res in (results.get("benchmarks") or {}).items():
                label = res.get("label") if isinstance(res, dict) else None
                seen.setdefault(name, str(label or name))
        paper = [(n, seen.get(n, label)) for n, label in PAPER_COLUMNS if n in seen]
        return paper + sorted((n, label) for n, label in seen.items() if n not in dict(PAPER_COLUMNS))


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RlvrError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RlvrError(f"{path}: expected a mapping of settings")
    return data


def _read_history(path: Path) -> dict[str, list[float]]:
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise RlvrError(f"{path}: expected example id -> list of per-epoch accuracies")
    return {str(k): [float(x) for x in v if isinstance(x, (int, float))] for k, v in data.items()}


def _numbered(folder: Path, prefix: str, suffix: str) -> list[tuple[int, Path]]:
    """(N, path) of the entries PREFIX + N + SUFFIX in folder, by N."""
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            middle = entry.name[len(prefix) : len(entry.name) - len(suffix) if suffix else None]
            if entry.name.startswith(prefix) and entry.name.endswith(suffix) and middle.isdigit():
                found.append((int(middle), entry))
    return sorted(found)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder; a folder without metrics.jsonl is not a run."""
    path = Path(run_dir)
    folder = RunFolder(path)
    if not path.is_dir():
        raise RlvrError(f"{path}: no such run folder")
    if not folder.metrics.is_file():
        raise RlvrError(f"{path}: not a run folder (no {runfolder.METRICS}); point to the --out folder of rlvr train")
    run = RunData(path, read_jsonl(folder.metrics))
    if folder.config.is_file():
        run.config = _read_config(folder.config)
    if folder.history.is_file():
        run.history = _read_history(folder.history)
    for step, evaluated in _numbered(folder.evals, "", ""):
        results_file = evaluated / runfolder.RESULTS
        if results_file.is_file():
            results = read_json(results_file)
            if not isinstance(results, dict):
                raise RlvrError(f"{results_file}: expected a JSON object")
            run.evals.append((step, results))
    run.validation = _numbered(folder.validation, runfolder.STEP_PREFIX, ".jsonl")
    return run
