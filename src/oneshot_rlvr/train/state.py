"""Checkpoints: `RUN/checkpoints/step_N/` holds the model and tokenizer in Hugging Face format plus
`trainer_state.pt` (optimizer, RNG states, step, data position, per-example history).

Run folders are shared, so opening one must never run code: the trainer state and PPO's critic hold only
tensors, numbers, strings, lists and dicts, and load with `torch.load(weights_only=True)`, which refuses
any other pickled object. A trainer state written before NumPy's RNG state was stored as a tensor holds
one NumPy array; it is read through an allowlist of NumPy's array reconstruction alone. Anything else is
unpickled the old way only with `trust_checkpoint=true`.

A checkpoint is written into a temporary folder and renamed into place, so an interrupted save
never leaves a half-written `step_N`. What only a resume reads (the trainer state, PPO's critic) can be
kept in the newest checkpoints alone: with AdamW it is twice the model's size again, and a run that
checkpoints every 20 of 2000 steps would otherwise keep a hundred copies of it.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.progress import nested_bars_off
from oneshot_rlvr.runfolder import STEP_PREFIX, RunFolder, publish

log = logging.getLogger("oneshot_rlvr.train")

STATE_FILE = "trainer_state.pt"
CRITIC_FILE = "critic.pt"
RESUME_FILES = (STATE_FILE, CRITIC_FILE)
"""The files of a checkpoint that only a resume reads, the one that marks it resumable first."""
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}(\d+)$")
_STATE_FIELDS = ("step", "optimizer", "scheduler", "data_position", "history", "rng")
_TRUST_HINT = "resume with trust_checkpoint=true only if you trust where the run folder came from"


def step_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """Every `step_N` folder of a run (renamed into place, so complete), oldest first."""
    root = RunFolder(run_dir).checkpoints
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


def resume_point(run_dir: Path, *, trust: bool = False) -> tuple[int, Path, dict[str, Any]] | None:
    """The newest checkpoint whose weights load and that holds the trainer state, as (step, folder, state);
    None when the run has none. A newer one with damaged weights is reported and passed over (the run says
    which one it resumes from instead); when none loads, the newest one's error stops the run."""
    damaged: RlvrError | None = None
    for step, path in reversed(checkpoint_dirs(run_dir)):
        try:
            check_weights(path)
        except RlvrError as err:
            log.warning("%s; passing over this checkpoint", err)
            damaged = damaged or err
            continue
        state = load_trainer_state(path, trust=trust)
        if damaged is not None:
            log.warning("resuming from %s, the newest checkpoint whose weights load", path)
        return step, path, state
    if damaged is not None:
        raise RlvrError(f"{damaged}; no older checkpoint with the trainer state loads") from None
    return None


def check_weights(checkpoint: Path) -> None:
    """Raise a one-line error naming the file when a `*.safetensors` file of `checkpoint` is damaged.

    Opening checks the header and that the file holds every tensor it lists (a truncated copy fails), without
    reading the weights themselves."""
    from safetensors import safe_open

    for path in sorted(checkpoint.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                list(f.keys())
        except Exception as err:  # safetensors raises its own SafetensorError, or OSError
            raise RlvrError(f"{path}: damaged weights ({_first_line(err)})") from None


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors, numbers and tuples (what `weights_only=True` loads)."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": _numpy_rng_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    _set_numpy_rng_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_rng_state() -> dict[str, Any]:
    # NumPy's state is a tuple around a uint32 array; the array travels as an int64 tensor (torch has no uint32
    # arithmetic to speak of, and 624 int64s are nothing), so the file needs no NumPy globals to load.
    legacy: Any = np.random.get_state(legacy=True)
    name, key, pos, has_gauss, gauss = legacy
    return {"bit_generator": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}


def _set_numpy_rng_state(state: dict[str, Any] | tuple[Any, ...]) -> None:
    if isinstance(state, tuple):  # a trainer state written before: NumPy's own tuple
        np.random.set_state(state)
        return
    key = state["key"].numpy().astype(np.uint32)
    np.random.set_state((state["bit_generator"], key, state["pos"], state["has_gauss"], state["cached_gaussian"]))


def save_checkpoint(run_dir: Path, step: int, model: Any, tokenizer: Any, trainer_state: dict[str, Any],
                    keep: int = 0, extra: dict[str, Any] | None = None, keep_state: int = 0) -> Path:
    """Write step_N atomically; `extra` maps file names to objects saved with torch.save beside it.

    Then keep only the newest `keep` checkpoints, and the resume files (`RESUME_FILES`) only in the newest
    `keep_state` of them (0: no limit). The new checkpoint is complete before anything older goes."""
    final = RunFolder(run_dir).checkpoint(step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp_step_{step}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    with nested_bars_off():  # (transformers' "Writing model shards" bar would break the run's bar)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    for name, obj in (extra or {}).items():
        torch.save(obj, tmp / name)
    torch.save({**trainer_state, "rng": rng_state()}, tmp / STATE_FILE)
    if final.exists():  # re-saving a step after a resume: replace the old copy
        shutil.rmtree(final)
    publish(tmp, final)
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


def load_trainer_state(checkpoint: Path, *, trust: bool = False) -> dict[str, Any]:
    """The trainer state of `checkpoint`, loaded without running code; `trust` (the `trust_checkpoint`
    setting) lets a state holding other Python objects be unpickled the old way."""
    path = checkpoint / STATE_FILE
    try:
        state = _load_plain(path)
    except _NotPlainData:
        state = _load_written_before(path, trust)
    if not isinstance(state, dict) or (missing := [k for k in _STATE_FIELDS if k not in state]):
        found = f"missing {', '.join(missing)}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise RlvrError(f"{path}: not a trainer state ({found})")
    return state


def load_critic_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    """PPO's critic weights of `checkpoint` (a state dict of tensors), loaded without running code."""
    path = checkpoint / CRITIC_FILE
    try:
        weights = _load_plain(path)
    except _NotPlainData as err:
        raise RlvrError(f"{path}: refused, it holds {err.reason}; a critic file holds tensors alone") from None
    if not (isinstance(weights, dict) and all(isinstance(v, torch.Tensor) for v in weights.values())):
        raise RlvrError(f"{path}: not a critic's weights (expected names mapped to tensors)")
    return weights


class _NotPlainData(Exception):
    """The file pickles an object that `weights_only=True` refuses; `reason` names it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _load_plain(path: Path, allow: list[Any] | None = None) -> Any:
    """torch.load with weights_only=True (plus the `allow`ed globals); a damaged file is a one-line error."""
    if not path.is_file():
        raise RlvrError(f"{path}: missing")
    try:
        with torch.serialization.safe_globals(allow or []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            raise _NotPlainData(f"a pickled Python object ({refused.group(1)}) beyond tensors and plain data") from None
        raise RlvrError(f"{path}: damaged or not a checkpoint file ({_first_line(err)})") from None
    except Exception as err:  # torch reports a damaged file as RuntimeError, KeyError, EOFError, ...
        raise RlvrError(f"{path}: damaged or not a checkpoint file ({_first_line(err)})") from None


def _load_written_before(path: Path, trust: bool) -> Any:
    try:
        state = _load_plain(path, allow=_numpy_array_globals())
    except _NotPlainData as err:
        if not trust:
            raise RlvrError(f"{path}: refused, it holds {err.reason}, and loading it could run code; "
                            f"{_TRUST_HINT}") from None
        log.warning("%s: trust_checkpoint=true: unpickling it the old way (this runs whatever code it holds)", path)
        # The one place that unpickles arbitrary objects: only behind trust_checkpoint=true, which a run folder's
        # own config.yaml cannot set (see config.load_config).
        return torch.load(path, map_location="cpu", weights_only=False)
    log.info("%s: written before the NumPy RNG state was stored as a tensor; reading its NumPy array through an "
             "allowlist of NumPy's array reconstruction", path)
    return state


def _numpy_array_globals() -> list[Any]:
    # What unpickling a plain NumPy array calls, and nothing else: `_reconstruct` makes an empty array of an
    # allowed dtype, whose contents are then set from bytes (torch documents this allowlist for arrays). The
    # array's module moved in NumPy 2, and a file names the module of the NumPy that wrote it, so both names.
    here = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    reconstruct = importlib.import_module(here)._reconstruct
    return [(reconstruct, "numpy.core.multiarray._reconstruct"),
            (reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, np.dtypes.UInt32DType]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return line if len(line) <= 160 else line[:157] + "..."
