"""`rlvr train --resume DIR` end to end: a run killed between two checkpoints continues with each step once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.train.state import checkpoint_dirs

HERE = Path(__file__).resolve().parent
BASE = ["problem=What is 2+3?", "answer=5", "batch_size=2", "mini_batch_size=2", "micro_batch_size=8", "n=2",
        "max_new_tokens=4", "lr=1e-3", "device=cpu", "temperature=1.0", "steps=5", "save_every=2"]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_run_killed_between_checkpoints_resumes_through_the_cli_with_each_step_once(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    killed = subprocess.run(
        [sys.executable, "-m", "oneshot_rlvr", "train", f"model={tiny_model_dir}", *BASE,
         "reward=scripted_rewards:has_letter_e_killed_in_step_4", "--out", str(run), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before = _rows(run)
    # Between two checkpoints: step 3's row is written, the newest checkpoint is step 2's.
    assert [r["step"] for r in before] == [1, 2, 3]
    assert [step for step, _ in checkpoint_dirs(run)] == [2]

    monkeypatch.syspath_prepend(str(HERE))
    assert main(["train", "--resume", str(run), "reward=scripted_rewards:has_letter_e", "--quiet"]) == 0
    after = _rows(run)
    assert [r["step"] for r in after] == [1, 2, 3, 4, 5]  # step 3's row from the killed run was dropped
    assert after[:2] == before[:2]  # the rows up to the checkpoint are kept as they were
    history = json.loads((run / "history.json").read_text())
    assert list(history) == ["0"] and len(history["0"]) == 5  # one example, one epoch per step: none twice
    assert [step for step, _ in checkpoint_dirs(run)] == [5]
    assert "reward: scripted_rewards:has_letter_e\n" in (run / "config.yaml").read_text()
