"""Training runs reported live: every metrics.jsonl row arrives in TensorBoard, W&B (offline) and MLflow (a local
file store), read back with each tool's own reader; a resume continues the same runs; only rank 0 reports."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oneshot_rlvr import tracking
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.train import train

HERE = Path(__file__).resolve().parent
BASE = ["problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4", "micro_batch_size=8", "n=4",
        "max_new_tokens=6", "lr=1e-3", "device=cpu", "temperature=1.0", "autocast=none"]


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


def rows_of(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))
            and math.isfinite(v)}


def tensorboard_scalars(folder: Path) -> dict[int, dict[str, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    by_step: dict[int, dict[str, float]] = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            by_step.setdefault(event.step, {})[tag] = event.value
    return by_step


def wandb_records(path: Path) -> list[Any]:
    """The records of a W&B transaction log (.wandb): a 7-byte file header, then 32 KiB blocks of
    (crc32, length, type) framed chunks, each record one protobuf `Record` (full, or first..last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a header is padding
            pos += room
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if kind == 0:
            pos += room
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full or last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(records: list[Any]) -> dict[int, dict[str, float]]:
    by_step: dict[int, dict[str, float]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.key or ".".join(item.nested_key): json.loads(item.value_json)
                     for item in record.history.item}
            step = int(items.pop("step"))
            by_step[step] = {k: float(v) for k, v in items.items() if not k.startswith("_")}
    return by_step


def test_every_row_arrives_in_each_backend_and_a_resume_continues_them(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard is an optional extra ([tracking])")
    pytest.importorskip("wandb", reason="W&B is an optional extra ([tracking])")
    pytest.importorskip("mlflow", reason="MLflow is an optional extra ([tracking])")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    settings = [f"model={tiny_model_dir}", *BASE, "save_every=2", "keep_trainer_state=0",
                "report_to=tensorboard,wandb,mlflow", "tracking_project=tests"]
    train(resolve_config(None, None, [*settings, "steps=3"]), run, reward_fn=has_letter_e, quiet=True)
    first_ids = json.loads((run / "tracking.json").read_text())
    # Resume from step 2's checkpoint (as after a crash before step 3's): step 3 is trained again, then step 4.
    shutil.rmtree(run / "checkpoints" / "step_3")
    train(resolve_config(None, None, [*settings, "steps=4"]), run, reward_fn=has_letter_e, quiet=True, resume=True)
    rows = rows_of(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    expected = {r["step"]: numbers(r) for r in rows}
    assert {"reward_mean", "pg_loss", "entropy", "grad_norm", "lr"} <= set(expected[1])

    # TensorBoard: one scalar per metric and step; events past the checkpoint were purged on resume.
    scalars = tensorboard_scalars(run / "tensorboard")
    assert sorted(scalars) == [1, 2, 3, 4]
    for step, values in expected.items():
        assert set(scalars[step]) == set(values)
        assert all(scalars[step][k] == pytest.approx(v, rel=1e-6, abs=1e-30) for k, v in values.items())

    # W&B: two offline run folders (first run, resume) under one id; each logged its rows, the config once each.
    assert json.loads((run / "tracking.json").read_text())["wandb_id"] == first_ids["wandb_id"]
    logs = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 2 and all(p.name == f"run-{first_ids['wandb_id']}.wandb" for p in logs)
    before, after = (wandb_records(p) for p in logs)
    assert {r.run.run_id for r in before + after if r.WhichOneof("record_type") == "run"} == {first_ids["wandb_id"]}
    configs = [{i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in r.config.update}
               for r in before if r.WhichOneof("record_type") == "config"]
    assert any(c.get("lr") == 1e-3 and c.get("report_to") == "tensorboard,wandb,mlflow" for c in configs)
    history = wandb_history(before)
    assert sorted(history) == [1, 2, 3]
    for step in (1, 2):  # (step 3 was redone after the resume)
        assert history[step] == pytest.approx(expected[step])
    assert wandb_history(after) == {s: pytest.approx(expected[s]) for s in (3, 4)}

    # MLflow: one run, read back through its client; the resumed part appended steps 3 and 4 again.
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    mlflow_run = client.get_run(first_ids["mlflow_id"])
    assert mlflow_run.info.run_name == "run" and mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["lr"] == "0.001"
    points = client.get_metric_history(first_ids["mlflow_id"], "reward_mean")
    latest = {p.step: p.value for p in sorted(points, key=lambda p: p.timestamp)}
    assert latest == {s: pytest.approx(expected[s]["reward_mean"]) for s in (1, 2, 3, 4)}


def test_a_backend_that_raises_mid_run_is_switched_off_and_training_completes(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    class DiskFull:
        def __init__(self, target: tracking.Target, state: dict) -> None:
            pass

        def log(self, metrics: dict[str, float], step: int) -> None:
            calls.append(step)
            if step == 2:
                raise OSError(28, "No space left on device")

        def close(self) -> None:
            raise AssertionError("a switched-off backend is not closed")

    monkeypatch.setattr(tracking, "FACTORIES", {**tracking.FACTORIES, "tensorboard": DiskFull})
    monkeypatch.setattr(tracking, "check_installed", lambda names: None)
    run = tmp_path / "run"
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, "save_every=0", "steps=3",
                                      "report_to=tensorboard"])
    with caplog.at_level(logging.WARNING):
        train(cfg, run, reward_fn=has_letter_e, quiet=True)
    assert [r["step"] for r in rows_of(run)] == [1, 2, 3]
    assert calls == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.name == "oneshot_rlvr.tracking"]
    assert len(warnings) == 1 and "report_to tensorboard failed" in warnings[0] and "No space left" in warnings[0]
    assert (run / "checkpoints" / "step_3").is_dir()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_only_rank_0_reports_under_torchrun(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard is an optional extra ([tracking])")
    run = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    settings = [f"model={tiny_model_dir}", *BASE, "steps=2", "save_every=0", "rollout_batch_rows=8",
                "reward=scripted_rewards:has_letter_e", "report_to=tensorboard"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(_free_port()), "-m", "oneshot_rlvr.cli", "train", *settings, "--quiet", "--out",
                           str(run)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    event_files = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(event_files) == 1  # rank 1 opened no writer of its own
    rows = rows_of(run)
    scalars = tensorboard_scalars(run / "tensorboard")
    assert sorted(scalars) == [1, 2]
    assert all(scalars[r["step"]]["reward_mean"] == pytest.approx(r["reward_mean"]) for r in rows)
