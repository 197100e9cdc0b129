"""`rlvr demo --controls`: the follow-up papers' controls on the tiny world, one table.

Each row is the default demo (same example, steps and evaluation) with one thing changed: the reward, or the
loss. The row that answers "is the gain format, or reasoning?" is format-only against the true reward, on
lenient accuracy (the answer right in any format). Rows run one after another, `seeds` seeds each, into
OUT/<row>-seed<k>/; the table goes to OUT/controls.md and the figures to OUT/controls.json. Run again with
the same OUT, it reuses every finished row (its summary.json) and continues with the next.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_rlvr.demo import DemoOptions, run_or_reuse
from oneshot_rlvr.runfolder import write_atomic

log = logging.getLogger("oneshot_rlvr.demo")

MOVED = 0.05
"""A family 'moved' when its lenient accuracy, averaged over seeds, changed by at least this much."""


@dataclass(frozen=True)
class Control:
    name: str
    reward: str = "math"
    loss: str = "pg"
    entropy_only: bool = False
    several_updates: bool = False  # mini-batches of a quarter of the batch: 4 updates per rollout batch


CONTROLS = (
    Control("true reward"),
    Control("format only", reward="format"),
    Control("random, 4 updates/batch", reward="random", several_updates=True),
    Control("incorrect label", reward="incorrect"),
    Control("majority vote", reward="majority"),
    Control("entropy minimisation", loss="em"),
    Control("entropy only", entropy_only=True),
)


def _options(base: DemoOptions, control: Control, seed: int, out: Path) -> DemoOptions:
    overrides = list(base.overrides)
    if control.several_updates:
        from oneshot_rlvr.config import resolve_config

        batch = resolve_config("tiny-cpu", None, overrides).batch_size
        overrides.append(f"mini_batch_size={max(1, batch // 4) if batch % 4 == 0 else 1}")
    return dataclasses.replace(base, out=out, seed=seed, reward=control.reward, loss=control.loss,
                               entropy_only=control.entropy_only, overrides=overrides, quiet=True)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.split(",")[0]).strip("-")


def run_controls(base: DemoOptions, seeds: int = 2) -> str:
    """Run every control x `seeds` seeds (seed base.seed, base.seed + 1, ...); returns the table (markdown)."""
    results: list[dict[str, Any]] = []
    total = len(CONTROLS) * seeds
    for i, control in enumerate(CONTROLS):
        runs = []
        for k in range(seeds):
            seed = base.seed + k
            opts = _options(base, control, seed, base.out / f"{slug(control.name)}-seed{seed}")
            runs.append(run_or_reuse(opts, f"[{i * seeds + k + 1}/{total}] {control.name}, seed {seed}")[0])
        results.append({"control": control.name, "runs": runs})
    base.out.mkdir(parents=True, exist_ok=True)
    write_atomic(base.out / "controls.json", json.dumps(results, indent=2))
    table = format_controls(results)
    write_atomic(base.out / "controls.md", table + "\n")
    return table


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in runs) / len(runs)


def _cell(runs: list[dict[str, Any]], key: str) -> str:
    values = [f"{100 * float(r[key]):.1f}" for r in runs]
    return f"{100 * _mean(runs, key):.1f} ({', '.join(values)})" if len(runs) > 1 else values[0]


def families_moved(runs: list[dict[str, Any]], threshold: float = MOVED) -> str:
    """The families whose lenient accuracy, averaged over the runs, moved by `threshold` or more, with the move
    in points ("word +12.0, linear -6.0"); "none" when none did."""
    moved = []
    for fam in runs[0]["per_family"]:
        delta = sum(r["per_family"][fam]["final_lenient"] - r["per_family"][fam]["base_lenient"]
                    for r in runs) / len(runs)
        if abs(delta) >= threshold:
            moved.append(f"{fam} {100 * delta:+.1f}")
    return ", ".join(moved) or "none"


def kept_rising(summary: dict[str, Any]) -> str:
    """Did test lenient accuracy rise after the training example saturated (the gold accuracy reached 90%)?"""
    post = summary.get("post_saturation")
    if not post:
        return "no saturation"
    return "yes" if post["best_after"]["lenient"] > post["at_saturation"]["lenient"] else "no"


def format_controls(results: list[dict[str, Any]]) -> str:
    lines = ["| control | strict before | strict after | lenient before | lenient after | families moved (lenient) "
             "| kept rising after saturation | wall s per run |",
             "|---|---|---|---|---|---|---|---|"]
    for row in results:
        runs = row["runs"]
        lines.append(" | ".join([
            f"| {row['control']}", _cell(runs, "base_strict"), _cell(runs, "final_strict"),
            _cell(runs, "base_lenient"), _cell(runs, "final_lenient"), families_moved(runs),
            " / ".join(kept_rising(r) for r in runs), " / ".join(f"{r['wall_seconds']:.0f}" for r in runs)]) + " |")
    return "\n".join(lines)
