"""Which checkpoints a run keeps, and which of them keep what only a resume reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from oneshot_rlvr.config import TrainConfig, resolve_config
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.curve import checkpoint_steps
from oneshot_rlvr.train import train
from oneshot_rlvr.train.state import CRITIC_FILE, STATE_FILE, checkpoint_dirs, save_checkpoint, step_dirs

BASE = ["problem=What is 2+3?", "answer=5", "batch_size=2", "mini_batch_size=2", "micro_batch_size=8", "n=2",
        "max_new_tokens=4", "lr=1e-3", "device=cpu", "temperature=1.0", "kl_coef=0.01"]


class _Saves:
    """A model or tokenizer as far as a checkpoint is concerned: it writes its file into the folder."""

    def __init__(self, name: str):
        self.name = name

    def save_pretrained(self, path: Path, **_: object) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / self.name).write_text("{}")


def _save_steps(run: Path, steps: range, **keep: int) -> None:
    for step in steps:
        save_checkpoint(run, step, _Saves("config.json"), _Saves("tokenizer.json"), {"step": step},
                        extra={CRITIC_FILE: {"step": step}}, **keep)


def _files(run: Path) -> dict[int, set[str]]:
    return {step: {f.name for f in path.iterdir()} for step, path in step_dirs(run)}


def test_only_the_newest_checkpoints_keep_what_a_resume_reads(tmp_path: Path) -> None:
    _save_steps(tmp_path, range(1, 5), keep_state=2)
    files = _files(tmp_path)
    assert files[1] == files[2] == {"config.json", "tokenizer.json"}  # the model, for evaluation
    assert files[3] == files[4] == {"config.json", "tokenizer.json", STATE_FILE, CRITIC_FILE}
    assert [step for step, _ in checkpoint_dirs(tmp_path)] == [3, 4]  # what a resume may pick from
    assert [step for step, _ in checkpoint_steps(tmp_path)] == [1, 2, 3, 4]  # what `rlvr eval --run` reads


def test_keeping_fewer_checkpoints_counts_the_slimmed_ones_too(tmp_path: Path) -> None:
    _save_steps(tmp_path, range(1, 6), keep=3, keep_state=1)
    files = _files(tmp_path)
    assert sorted(files) == [3, 4, 5]
    assert STATE_FILE not in files[3] | files[4] and {STATE_FILE, CRITIC_FILE} <= files[5]


def test_no_limit_keeps_every_checkpoint_whole(tmp_path: Path) -> None:
    _save_steps(tmp_path, range(1, 4))
    assert all({STATE_FILE, CRITIC_FILE} <= names for names in _files(tmp_path).values())


def test_a_run_keeps_the_trainer_state_in_its_newest_checkpoint_and_resumes_from_it(
        tiny_model_dir: Path, tmp_path: Path) -> None:
    def config(*extra: str) -> TrainConfig:
        return resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, "save_every=1", *extra])

    whole, split, every = tmp_path / "whole", tmp_path / "split", tmp_path / "every"
    train(config("steps=4"), whole, quiet=True)  # (the default keeps it in the newest one)
    files = _files(whole)
    assert sorted(files) == [1, 2, 3, 4] and all("model.safetensors" in names for names in files.values())
    assert [step for step, names in files.items() if STATE_FILE in names] == [4]

    train(config("steps=2"), split, quiet=True)
    train(config("steps=4"), split, quiet=True, resume=True)  # from step_2, the one holding the state
    a, b = (load_file(run / "checkpoints/step_4/model.safetensors") for run in (whole, split))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(x)["step"] for x in (split / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]

    train(config("steps=2", "keep_trainer_state=0"), every, quiet=True)
    assert all(STATE_FILE in names for names in _files(every).values())


@pytest.mark.parametrize("key", ["keep_trainer_state", "keep_checkpoints", "save_every"])
def test_a_negative_count_names_the_setting(key: str) -> None:
    with pytest.raises(RlvrError, match=f"{key}=-1"):
        resolve_config(None, None, ["model=x", *BASE, f"{key}=-1"]).validate()


@pytest.mark.parametrize(("save_every", "saved"), [(0, []), (2, [2]), (3, [3])])
def test_save_final_false_keeps_only_the_periodic_checkpoints(tiny_model_dir: Path, tmp_path: Path, save_every: int,
                                                              saved: list[int]) -> None:
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", *BASE, "steps=3", f"save_every={save_every}"])
    run = train(cfg, tmp_path / "run", quiet=True, save_final=False)
    assert [step for step, _ in checkpoint_dirs(run)] == saved
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
