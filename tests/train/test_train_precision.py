"""autocast=auto: bf16 where the device multiplies bf16 natively, float32 elsewhere, recorded in the run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models import precision
from oneshot_rlvr.train import train
from oneshot_rlvr.train.update import autocast

CPU = torch.device("cpu")


@pytest.mark.parametrize(("setting", "native", "chosen"), [
    ("auto", True, "bf16"), ("auto", False, "none"), ("bf16", True, "bf16"), ("bf16", False, "bf16"),
    ("none", True, "none"), ("none", False, "none")])
def test_auto_picks_bf16_only_where_it_is_native(monkeypatch: pytest.MonkeyPatch, setting: str, native: bool,
                                                 chosen: str) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert precision.resolve_autocast(setting, CPU) == chosen


def test_bf16_asked_of_a_device_without_it_warns(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with caplog.at_level(logging.WARNING, logger=precision.__name__):
        precision.resolve_autocast("bf16", CPU)
    assert "no native bf16 matmul" in caplog.text and "autocast=auto" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=precision.__name__):
        precision.resolve_autocast("auto", CPU)
    assert not caplog.text


def test_unknown_autocast_names_the_setting() -> None:
    with pytest.raises(RlvrError, match="autocast='fp16'"):
        precision.resolve_autocast("fp16", CPU)


def _cpu_flags() -> set[str] | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    return set(line.split(":", 1)[1].split()) if line else None


@pytest.mark.skipif(_cpu_flags() is None, reason="no /proc/cpuinfo flags to hold the answer to (not x86 Linux)")
def test_native_bf16_agrees_with_the_cpus_own_flags() -> None:
    """Held to what the kernel reports, not to the call it is made of: a CPU with AVX512-BF16 or AMX multiplies
    bf16 natively; one without AVX-512 at all (AVX2-only) does not. Plain AVX-512 is oneDNN's call either way."""
    flags = _cpu_flags()
    assert flags is not None
    if flags & {"avx512_bf16", "amx_bf16"}:
        assert precision.native_bf16(CPU)
    elif "avx512f" not in flags:
        assert not precision.native_bf16(CPU)


def test_autocast_context_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.ones(2, 2)
    for setting, native, dtype in (("auto", True, torch.bfloat16), ("auto", False, torch.float32),
                                   ("bf16", False, torch.bfloat16), ("none", True, torch.float32)):
        monkeypatch.setattr(precision, "native_bf16", lambda device, native=native: native)
        cfg = resolve_config(None, None, ["problem=x", "answer=1", f"autocast={setting}"])
        with autocast(cfg, CPU):
            assert (x @ x).dtype == dtype, (setting, native)


BASE = ["problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4", "micro_batch_size=8", "n=4",
        "max_new_tokens=6", "lr=1e-3", "device=cpu", "temperature=1.0", "save_every=0", "steps=2", "kl_coef=0.01"]


def _run(model_dir: Path, out: Path, setting: str) -> tuple[str, list[dict]]:
    train(resolve_config(None, None, [f"model={model_dir}", *BASE, f"autocast={setting}"]), out, quiet=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    keep = ("reward_mean", "entropy", "kl", "pg_loss", "grad_norm", "response_length_mean")
    return (out / "config.yaml").read_text(), [{k: r[k] for k in keep} for r in rows]


@pytest.mark.parametrize(("native", "chosen"), [(True, "bf16"), (False, "none")])
def test_a_run_on_auto_trains_as_the_chosen_setting_and_records_it(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool, chosen: str) -> None:
    """auto's run computes exactly what the explicit setting computes (reference model and forward passes),
    and its config.yaml says which it was, so a resume keeps it."""
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    saved, auto_rows = _run(tiny_model_dir, tmp_path / "auto", "auto")
    assert f"autocast: {chosen}" in saved
    saved, explicit_rows = _run(tiny_model_dir, tmp_path / "explicit", chosen)
    assert f"autocast: {chosen}" in saved
    assert auto_rows == explicit_rows
    other = "none" if chosen == "bf16" else "bf16"
    assert _run(tiny_model_dir, tmp_path / "other", other)[1] != auto_rows  # (the setting does reach the passes)
