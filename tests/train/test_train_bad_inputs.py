"""Two bad inputs end in one line naming the file, and leave the run folder as it was: a `--train-file` that is
not parquet, and on `--resume` checkpoints whose weights are damaged (an older one that loads is used instead)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from safetensors.torch import load_file

from oneshot_rlvr.cli import main
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.train import train

BASE = ["problem=What is 2+3?", "answer=5", "batch_size=2", "mini_batch_size=2", "micro_batch_size=8", "n=2",
        "max_new_tokens=4", "lr=1e-3", "device=cpu", "temperature=1.0"]


def _digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path -> its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run_with_checkpoints(model: Path, run: Path) -> None:
    """Four steps, a checkpoint every two, each keeping its trainer state."""
    cfg = resolve_config(None, None, [f"model={model}", *BASE, "steps=4", "save_every=2", "keep_trainer_state=0"])
    train(cfg, run, quiet=True)


def _damage(checkpoint: Path) -> Path:
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    return weights


def test_a_train_file_that_is_not_parquet_is_one_line_naming_it(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.parquet"
    bad.write_text('{"question": "What is 2+3?", "answer": "5"}\n')
    run = tmp_path / "run"
    before = _digest(tmp_path)
    code = main(["train", "--train-file", str(bad), "--out", str(run), f"model={tiny_model_dir}", "device=cpu",
                 "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"rlvr train: error: {bad}: not a readable parquet file (") and "\n" not in err
    assert _digest(tmp_path) == before and not run.exists()


def test_resume_passes_over_a_checkpoint_with_damaged_weights_and_says_which_it_uses(
        tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    _run_with_checkpoints(tiny_model_dir, run)
    damaged = _damage(run / "checkpoints" / "step_4")
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, "steps=4", "save_every=2",
                                      "keep_trainer_state=0"])
    with caplog.at_level(logging.WARNING, logger="oneshot_rlvr.train"):
        train(cfg, run, quiet=True, resume=True)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"{damaged}: damaged weights (") and "passing over" in m for m in messages), messages
    assert f"resuming from {run / 'checkpoints' / 'step_2'}, the newest checkpoint whose weights load" in messages
    assert _steps(run) == [1, 2, 3, 4]  # steps 3 and 4 again, each once
    assert load_file(damaged)  # step 4 saved again, whole


def test_resume_stops_with_the_error_when_no_checkpoint_loads_and_changes_nothing(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    _run_with_checkpoints(tiny_model_dir, run)
    newest = _damage(run / "checkpoints" / "step_4")
    _damage(run / "checkpoints" / "step_2")
    before = _digest(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"rlvr train: error: {newest}: damaged weights (")
    assert err[-1].endswith("no older checkpoint with the trainer state loads")
    assert _digest(run) == before
