"""Checkpoints: `RUN/checkpoints/step_N/` holds the model and tokenizer in Hugging Face format plus
`trainer_state.pt` (optimizer, RNG states, step, data position, per-example history).

A checkpoint is written into a temporary folder and renamed into place, so an interrupted save
never leaves a half-written `step_N`. What only a resume reads (the trainer state, PPO's critic) can be
kept in the newest checkpoints alone: with AdamW it is twice the model's size again, and a run that
checkpoints every 20 of 2000 steps would otherwise keep a hundred copies of it.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"
CRITIC_FILE = "critic.pt"
RESUME_FILES = (STATE_FILE, CRITIC_FILE)
"""The files of a checkpoint that only a resume reads, the one that marks it resumable first."""
_STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """Every `step_N` folder of a run (renamed into place, so complete), oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    return sorted(found)


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """The checkpoints a run can resume from (those holding the trainer state), oldest first."""
    return [(step, path) for step, path in step_dirs(run_dir) if (path / STATE_FILE).exists()]


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model: Any, tokenizer: Any, trainer_state: dict[str, Any],
                    keep: int = 0, extra: dict[str, Any] | None = None, keep_state: int = 0) -> Path:
    """Write step_N atomically; `extra` maps file names to objects saved with torch.save beside it.

    Then keep only the newest `keep` checkpoints, and the resume files (`RESUME_FILES`) only in the newest
    `keep_state` of them (0: no limit). The new checkpoint is complete before anything older goes."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".tmp_step_{step}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for name, obj in (extra or {}).items():
        torch.save(obj, tmp / name)
    torch.save({**trainer_state, "rng": rng_state()}, tmp / STATE_FILE)
    if final.exists():  # re-saving a step after a resume: replace the old copy
        shutil.rmtree(final)
    os.replace(tmp, final)
    if keep > 0:
        for _, old in step_dirs(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    if keep_state > 0:
        for _, old in checkpoint_dirs(run_dir)[:-keep_state]:
            # The trainer state first: once it is gone the folder no longer reads as resumable, so an interruption
            # here never leaves a resumable checkpoint without its critic.
            for name in RESUME_FILES:
                (old / name).unlink(missing_ok=True)
    return final


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=False)
    return state
