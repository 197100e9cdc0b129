"""A run folder for serving tests: step_N checkpoints that are copies of the bundled tiny model."""

from __future__ import annotations

import json
import shutil

from oneshot_rlvr.models.load import resolve_model_path


def make_run(root, steps, val=None):
    """A run folder whose step_N checkpoints are copies of the bundled tiny model."""
    tiny = resolve_model_path("builtin:tiny")
    for step in steps:
        shutil.copytree(tiny, root / "checkpoints" / f"step_{step}")
        (root / "checkpoints" / f"step_{step}" / "trainer_state.pt").write_bytes(b"resume file")
    rows = [{"step": s, "loss": 0.1, **({"val_accuracy": val[s]} if val and s in val else {})}
            for s in range(1, max(steps) + 1)]
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root
