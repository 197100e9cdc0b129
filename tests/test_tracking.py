"""The tracker front: report_to parsing, install hints, one warning for a failing backend, ids kept for resume."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from oneshot_rlvr import tracking
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.tracking import Target, Tracker, open_tracker, parse_report_to, run_tracker


def test_report_to_parses_lists_and_none() -> None:
    assert parse_report_to("") == []
    assert parse_report_to("none") == []
    assert parse_report_to("wandb, tensorboard,wandb") == ["wandb", "tensorboard"]
    assert parse_report_to("MLflow") == ["mlflow"]
    with pytest.raises(RlvrError, match=r"report_to='wandb,comet'.*'comet' is not a tracker"):
        parse_report_to("wandb,comet")


def test_yaml_list_and_unknown_tracker_in_config(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("report_to: [tensorboard, mlflow]\n")
    assert resolve_config(None, str(file), []).report_to == "tensorboard,mlflow"
    cfg = resolve_config(None, None, ["problem=1+1?", "answer=2", "report_to=neptune"])
    with pytest.raises(RlvrError, match="'neptune' is not a tracker"):
        cfg.validate()


def test_missing_package_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    cfg = resolve_config(None, None, ["problem=1+1?", "answer=2", "report_to=wandb"])
    with pytest.raises(RlvrError) as err:
        cfg.validate()
    message = str(err.value)
    assert "\n" not in message
    assert "wandb package is not installed" in message
    assert "-e '.[tracking]'" in message and "constraints-cpu.txt" in message


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []
        self.fail_at = fail_at
        self.closed = False

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step == self.fail_at:
            raise OSError("No space left on device")
        self.rows.append((step, metrics))

    def close(self) -> None:
        self.closed = True


def test_failing_backend_warns_once_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    flaky, steady = Recorder(fail_at=2), Recorder()
    tracker = Tracker({"wandb": flaky, "tensorboard": steady})
    with caplog.at_level(logging.WARNING, logger="oneshot_rlvr.tracking"):
        for step in (1, 2, 3):
            tracker.log({"step": step, "reward_mean": step / 4, "loss": float("nan"), "note": "text"})
        tracker.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "report_to wandb failed" in warnings[0].getMessage()
    assert "No space left on device" in warnings[0].getMessage()
    assert [s for s, _ in flaky.rows] == [1] and not flaky.closed
    # Non-finite and non-numeric values stay in metrics.jsonl only; the step is the axis, not a metric.
    assert steady.rows == [(1, {"reward_mean": 0.25}), (2, {"reward_mean": 0.5}), (3, {"reward_mean": 0.75})]
    assert steady.closed and tracker.active == []


def test_a_backend_that_cannot_start_is_left_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(target: Target, state: dict) -> Recorder:
        raise ConnectionError("api.wandb.ai unreachable")

    steady = Recorder()
    monkeypatch.setattr(tracking, "FACTORIES", {**tracking.FACTORIES, "wandb": refuse,
                                                "tensorboard": lambda target, state: steady})
    monkeypatch.setattr(tracking, "check_installed", lambda names: None)
    with caplog.at_level(logging.WARNING, logger="oneshot_rlvr.tracking"):
        tracker = run_tracker({"report_to": "wandb,tensorboard"}, tmp_path, resume=False)
    assert tracker.active == ["tensorboard"]
    assert any("report_to wandb could not start" in r.getMessage() for r in caplog.records)


def test_ids_are_kept_in_the_run_folder_and_reused_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []

    class Keeper(Recorder):
        def __init__(self, target: Target, state: dict) -> None:
            super().__init__()
            seen.append(state.get("wandb_id") if target.resume else None)
            state["wandb_id"] = seen[-1] or f"id{len(seen)}"

    monkeypatch.setattr(tracking, "FACTORIES", {**tracking.FACTORIES, "wandb": Keeper})
    monkeypatch.setattr(tracking, "check_installed", lambda names: None)
    open_tracker(["wandb"], Target(tmp_path, "p", "n"))
    assert json.loads((tmp_path / tracking.STATE_FILE).read_text()) == {"wandb_id": "id1"}
    open_tracker(["wandb"], Target(tmp_path, "p", "n", resume=True))
    open_tracker(["wandb"], Target(tmp_path, "p", "n"))  # a fresh run folder start: a new id
    assert seen == [None, "id1", None]
    assert json.loads((tmp_path / tracking.STATE_FILE).read_text()) == {"wandb_id": "id3"}


def test_no_report_to_opens_nothing(tmp_path: Path) -> None:
    assert run_tracker({"report_to": ""}, tmp_path, resume=False).active == []
    assert not (tmp_path / tracking.STATE_FILE).exists()
