"""`rlvr eval` stops where the Qwen2.5-Math harness stops: at <|im_end|> and <|endoftext|> (151645 and 151643 in
Qwen2.5's vocabulary), also for a base model whose EOS is <|endoftext|> alone; results.json records the ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main


@pytest.fixture(scope="module")
def base_like_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with Qwen2.5-Math-1.5B's EOS layout: tokenizer, config and generation_config all name
    <|endoftext|> (id 0 here), none <|im_end|> (id 2)."""
    out = tmp_path_factory.mktemp("base_like") / "model"
    shutil.copytree(tiny_model_dir, out)
    for name, key, value in (("tokenizer_config.json", "eos_token", "<|endoftext|>"),
                             ("config.json", "eos_token_id", 0), ("generation_config.json", "eos_token_id", 0)):
        data = json.loads((out / name).read_text(encoding="utf-8"))
        data[key] = value
        (out / name).write_text(json.dumps(data), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "toy.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {a}+1?", "answer": str(a + 1)}) + "\n"
                            for a in (1, 2)), encoding="utf-8")
    return path


def _eval(model: Path, toy: Path, out: Path, *extra: str) -> dict:
    assert main(["eval", "--model", str(model), "--benchmark", f"toy={toy}", "--max-new-tokens", "3",
                 "--device", "cpu", "--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text(encoding="utf-8"))["settings"]


def test_eval_stops_at_both_end_tokens_by_default(base_like_dir: Path, toy: Path, tmp_path: Path) -> None:
    settings = _eval(base_like_dir, toy, tmp_path / "out")
    assert settings["stop"] == "harness" and settings["stop_ids"] == [0, 2]


def test_stop_eos_is_the_base_models_eos_alone(base_like_dir: Path, toy: Path, tmp_path: Path) -> None:
    settings = _eval(base_like_dir, toy, tmp_path / "out", "--stop", "eos")
    assert settings["stop"] == "eos" and settings["stop_ids"] == [0]


def test_eval_of_a_runs_checkpoints_stops_at_both_too(base_like_dir: Path, toy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(base_like_dir, run / "checkpoints" / "step_1")
    assert main(["eval", "--run", str(run), "--benchmark", f"toy={toy}", "--max-new-tokens", "3"]) == 0
    settings = json.loads((run / "eval/1/results.json").read_text(encoding="utf-8"))["settings"]
    assert settings["stop_ids"] == [0, 2]


def test_a_bad_stop_is_one_line(base_like_dir: Path, toy: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", str(base_like_dir), "--benchmark", f"toy={toy}", "--device", "cpu",
                 "--out", str(tmp_path / "out"), "--stop", "<|nope|>"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rlvr eval:")]
    assert len(errors) == 1  # (the other stderr lines are the model loader's progress bar)
    assert errors[0].startswith("rlvr eval: error: stop '<|nope|>': '<|nope|>' is not a token")
