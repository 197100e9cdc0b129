"""Opening a run folder never runs code: the trainer state and the critic load as tensors and plain data."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from oneshot_rlvr.config import apply_overrides, load_config, resolve_config, save_config
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.train import train
from oneshot_rlvr.train.state import (
    CRITIC_FILE,
    STATE_FILE,
    load_critic_state,
    load_trainer_state,
    rng_state,
    set_rng_state,
)

BASE = ["problem=What is 2+3?", "answer=5", "batch_size=2", "mini_batch_size=2", "micro_batch_size=8", "n=2",
        "max_new_tokens=4", "lr=1e-3", "device=cpu", "temperature=1.0", "save_every=2"]


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


class _CreatesFile:
    """Unpickling this opens (so creates) `target` for writing: what a crafted checkpoint could do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self) -> tuple:
        return (open, (str(self.target), "w"))


def _plain_state(**extra: object) -> dict:
    return {"step": 2, "optimizer": {"state": {}, "param_groups": []}, "scheduler": {}, "data_position": (0, 2),
            "history": {"values": {}, "pending": {}}, "rng": rng_state(), **extra}


def _as_written_before(state: dict) -> dict:
    """The state as the code before this format wrote it: NumPy's RNG state as NumPy's own tuple, array and all."""
    np_state = state["rng"]["numpy"]
    legacy = ("MT19937", np_state["key"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
              np_state["cached_gaussian"])
    return {**state, "rng": {**state["rng"], "numpy": legacy}}


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(err: pytest.ExceptionInfo[RlvrError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_a_new_state_is_plain_data_and_restores_every_rng(tmp_path: Path) -> None:
    torch.save(_plain_state(), tmp_path / STATE_FILE)
    torch.load(tmp_path / STATE_FILE, weights_only=True)  # no allowlist needed: nothing but tensors and plain data
    state = load_trainer_state(tmp_path)
    expected = (random.random(), np.random.random_sample(4).tolist(), np.random.standard_normal(), torch.rand(3))
    set_rng_state(state["rng"])
    got = (random.random(), np.random.random_sample(4).tolist(), np.random.standard_normal(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


def test_a_state_written_before_loads_its_numpy_array_through_the_allowlist(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.save(_as_written_before(_plain_state()), tmp_path / STATE_FILE)
    with pytest.raises(pickle.UnpicklingError, match="numpy"):  # what a plain weights_only load makes of it
        torch.load(tmp_path / STATE_FILE, weights_only=True)
    expected = np.random.random_sample(5).tolist()
    with caplog.at_level(logging.INFO, logger="oneshot_rlvr.train"):
        state = load_trainer_state(tmp_path)
    assert [r.getMessage() for r in caplog.records if "written before" in r.getMessage()] == [
        f"{tmp_path / STATE_FILE}: written before the NumPy RNG state was stored as a tensor; reading its NumPy "
        "array through an allowlist of NumPy's array reconstruction"]
    set_rng_state(state["rng"])
    assert np.random.random_sample(5).tolist() == expected


def test_a_state_that_would_create_a_file_is_refused_and_names_the_setting(tmp_path: Path) -> None:
    canary, target = tmp_path / "canary", tmp_path / "created"
    pickle.loads(pickle.dumps(_CreatesFile(canary))).close()  # the payload is live: plain unpickling runs it
    assert canary.exists()
    torch.save(_plain_state(payload=_CreatesFile(target)), tmp_path / STATE_FILE)
    before = _snapshot(tmp_path)
    with pytest.raises(RlvrError) as err:
        load_trainer_state(tmp_path)
    message = _one_line(err)
    assert message.startswith(f"{tmp_path / STATE_FILE}: refused, it holds a pickled Python object (io.open)")
    assert "trust_checkpoint=true" in message
    assert not target.exists() and _snapshot(tmp_path) == before


def test_trust_checkpoint_unpickles_other_objects_the_old_way(tmp_path: Path) -> None:
    # A harmless object beyond the allowlist stands for what older code might have pickled.
    torch.save(_plain_state(written=datetime.date(2025, 5, 1)), tmp_path / STATE_FILE)
    with pytest.raises(RlvrError, match=r"\(datetime\.date\).*trust_checkpoint=true"):
        load_trainer_state(tmp_path)
    assert load_trainer_state(tmp_path, trust=True)["written"] == datetime.date(2025, 5, 1)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not a dict", "missing fields"])
def test_a_damaged_state_is_one_line_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = tmp_path / STATE_FILE
    torch.save(_plain_state(), path)
    data = path.read_bytes()
    contents = {"truncated": data[: len(data) // 2], "garbage": b"not a checkpoint " * 8, "empty": b""}
    if damage in contents:
        path.write_bytes(contents[damage])
    else:
        torch.save([1, 2] if damage == "not a dict" else {"step": 2}, path)
    with pytest.raises(RlvrError) as err:
        load_trainer_state(tmp_path, trust=True)  # (trusting a file does not make a damaged one readable)
    assert _one_line(err).startswith(f"{path}: ")


def test_a_critic_file_holds_tensors_alone(tmp_path: Path) -> None:
    target = tmp_path / "created"
    torch.save({"head.weight": torch.ones(1, 4), "head.bias": _CreatesFile(target)}, tmp_path / CRITIC_FILE)
    with pytest.raises(RlvrError) as err:
        load_critic_state(tmp_path)
    assert _one_line(err).startswith(f"{tmp_path / CRITIC_FILE}: refused, it holds a pickled Python object (io.open)")
    assert not target.exists()
    torch.save({"head.weight": torch.ones(1, 4), "head.bias": 0.5}, tmp_path / CRITIC_FILE)
    with pytest.raises(RlvrError, match="not a critic's weights"):
        load_critic_state(tmp_path)


def test_a_run_folder_cannot_grant_itself_trust(tmp_path: Path) -> None:
    cfg = resolve_config(None, None, ["model=x", *BASE, "trust_checkpoint=true"])
    save_config(cfg, tmp_path / "config.yaml")  # (as a run that was resumed with it records it)
    saved = load_config(tmp_path / "config.yaml")
    assert cfg.trust_checkpoint and not saved.trust_checkpoint
    assert apply_overrides(saved, {"trust_checkpoint": "true"}, where="command line").trust_checkpoint


def test_a_run_resumes_exactly_from_a_state_written_before(tiny_model_dir: Path, tmp_path: Path) -> None:
    def config(steps: int):
        return resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, f"steps={steps}"])

    whole, split = tmp_path / "whole", tmp_path / "split"
    train(config(4), whole, reward_fn=has_letter_e, quiet=True)
    train(config(2), split, reward_fn=has_letter_e, quiet=True)
    state_file = split / "checkpoints/step_2" / STATE_FILE
    torch.save(_as_written_before(torch.load(state_file, weights_only=True)), state_file)
    train(config(4), split, reward_fn=has_letter_e, quiet=True, resume=True)
    a, b = (load_file(run / "checkpoints/step_4/model.safetensors") for run in (whole, split))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(x)["step"] for x in (split / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.parametrize("name", [STATE_FILE, CRITIC_FILE])
def test_a_hostile_file_in_a_run_folder_stops_the_resume_and_changes_nothing(
        tiny_model_dir: Path, tmp_path: Path, name: str) -> None:
    run, target = tmp_path / "run", tmp_path / "created"
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, "steps=2", "algo=ppo", "kl_coef=0"])
    train(cfg, run, reward_fn=has_letter_e, quiet=True)
    path = run / "checkpoints/step_2" / name
    content = torch.load(path, weights_only=True)
    bad_key = "rng" if name == STATE_FILE else "head.bias"
    torch.save({**content, bad_key: _CreatesFile(target)}, path)
    before = _snapshot(run)
    with pytest.raises(RlvrError) as err:
        train(resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, "steps=3", "algo=ppo", "kl_coef=0"]),
              run, reward_fn=has_letter_e, quiet=True, resume=True)
    assert _one_line(err).startswith(f"{path}: refused, it holds a pickled Python object (io.open)")
    assert not target.exists()
    assert _snapshot(run) == before
