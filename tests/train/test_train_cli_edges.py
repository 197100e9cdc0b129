"""`rlvr train` at its edges: settings that mean "off", conflicting options, a CPU-only torch, paths that
outlive the working directory, Ctrl-C, and a resume with nothing to resume from."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from oneshot_rlvr.cli import main
from oneshot_rlvr.config import load_config, resolve_config
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.train import train
from oneshot_rlvr.train.interrupt import TrainingInterrupted

BASE = ["problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4", "micro_batch_size=8", "n=4",
        "max_new_tokens=4", "lr=1e-3", "device=cpu", "temperature=1.0", "save_every=0"]


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


def config(model_dir: Path, *extra: str):
    return resolve_config(None, None, [f"model={model_dir}", *BASE, *extra])


def _steps(run: Path) -> list[int]:
    """The training steps logged (a run with validation also logs a step-0 row: validation before training)."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if r["step"] > 0]


def test_val_every_zero_turns_validation_off(tiny_model_dir: Path, tmp_path: Path) -> None:
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    train(config(tiny_model_dir, "steps=2", f"val_file={val}", "val_every=0"), tmp_path / "run",
          reward_fn=has_letter_e, quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and not any("val_accuracy" in r for r in rows)
    assert not (tmp_path / "run/validation").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (("temperature=-1",), "temperature=-1"), (("temperature=0",), "temperature=0"), (("top_p=0",), "top_p=0"),
    (("val_every=-1",), "val_every=-1"),
])
def test_sampling_settings_fail_before_the_model_loads(tmp_path: Path, extra: tuple, message: str) -> None:
    cfg = resolve_config(None, None, ["model=/no/such/model", *BASE, *extra])
    with pytest.raises(RlvrError, match=message):
        train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)


def test_cuda_on_a_cpu_only_torch_is_one_line(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        assert main(["train", f"model={tiny_model_dir}", *BASE, f"device={device}", "--out",
                     str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"device={device}" in err and "device=cpu" in err


def test_out_naming_a_file_is_one_line(tiny_model_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("x")
    assert main(["train", f"model={tiny_model_dir}", *BASE, "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "taken" in err and "exists" in err


@pytest.mark.parametrize("option", [["--out", "elsewhere"], ["--problem", "1+1?"], ["--preset", "tiny-cpu"],
                                    ["--config", "c.yaml"], ["--train-file", "t.jsonl"]])
def test_resume_with_options_of_a_new_run_is_an_error(tmp_path: Path, option: list[str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("steps: 3\n")
    assert main(["train", "--resume", str(run), *option]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and option[0] in err


def test_run_folder_paths_are_absolute_so_a_resume_works_from_anywhere(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data/train.jsonl").write_text(json.dumps({"question": "What is 2+3?", "answer": "5"}) + "\n")
    (work / "data/val.jsonl").write_text(json.dumps({"question": "What is 1+1?", "answer": "2"}) + "\n")
    monkeypatch.chdir(work)
    base = [a for a in BASE if not a.startswith(("problem=", "answer="))]
    assert main(["train", f"model={tiny_model_dir}", *base, "train_file=data/train.jsonl",
                 "val_file=data/val.jsonl", "val_every=1", "steps=1", "save_every=1", "--out", "run",
                 "--quiet"]) == 0
    saved = load_config(work / "run/config.yaml")
    assert saved.train_file == str(work / "data/train.jsonl") and saved.val_file == str(work / "data/val.jsonl")
    assert "absolute paths" in (work / "run/config.yaml").read_text().splitlines()[0]
    monkeypatch.chdir(tmp_path.anchor)
    assert main(["train", "--resume", str(work / "run"), "steps=2", "--quiet"]) == 0
    assert _steps(work / "run") == [1, 2]


def _interrupt_at(step: int):
    calls = {"n": 0}

    def reward(problems: list, texts: list[str]) -> list[float]:
        calls["n"] += 1
        if calls["n"] == step:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of step `step`
        return has_letter_e(problems, texts)

    return reward


def test_ctrl_c_finishes_the_step_saves_it_and_resumes_exactly(tiny_model_dir: Path, tmp_path: Path) -> None:
    extra = ("save_every=20", "steps=4")
    before = signal.getsignal(signal.SIGINT)  # (the default handler, or SIG_IGN where the runner ignores SIGINT)
    train(config(tiny_model_dir, *extra), tmp_path / "whole", reward_fn=has_letter_e, quiet=True)
    with pytest.raises(TrainingInterrupted) as info:
        train(config(tiny_model_dir, *extra), tmp_path / "cut", reward_fn=_interrupt_at(2), quiet=True)
    message = str(info.value)
    assert "step_2" in message and "--resume" in message and str(tmp_path / "cut") in message
    assert sorted(p.name for p in (tmp_path / "cut/checkpoints").iterdir()) == ["step_2"]
    assert _steps(tmp_path / "cut") == [1, 2]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
    train(config(tiny_model_dir, *extra), tmp_path / "cut", reward_fn=has_letter_e, quiet=True, resume=True)
    a = load_file(tmp_path / "whole/checkpoints/step_4/model.safetensors")
    b = load_file(tmp_path / "cut/checkpoints/step_4/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_through_the_command_exits_130_and_says_how_to_resume(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import oneshot_rlvr.train.loop as loop
    from oneshot_rlvr.reward.functions import resolve_reward

    monkeypatch.setattr(loop, "resolve_reward", lambda spec, **kw: resolve_reward(spec, fn=_interrupt_at(1)))
    assert main(["train", f"model={tiny_model_dir}", *BASE, "steps=3", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rlvr train: interrupted; stopped after step 1")
    assert "checkpoints/step_1" in err and f"rlvr train --resume {tmp_path / 'run'}" in err


def test_resume_without_a_checkpoint_says_it_starts_fresh(tiny_model_dir: Path, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="oneshot_rlvr.train"):
        train(config(tiny_model_dir, "steps=1"), tmp_path / "run", reward_fn=has_letter_e, quiet=True, resume=True)
    assert any("no checkpoint to resume from; starting from step 0" in r.getMessage() for r in caplog.records)
