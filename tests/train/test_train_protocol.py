"""The official run's protocol on the tiny model: validation before the first step (val_before_train=True),
once per run folder, and the `stop` setting resolved, used by the rollouts and recorded in config.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from oneshot_rlvr.cli import main
from oneshot_rlvr.config import load_config, resolve_config
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.models.stops import resolve_stop
from oneshot_rlvr.train import train
from oneshot_rlvr.train.validate import Validator

BASE = ["problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4", "micro_batch_size=8", "n=4",
        "max_new_tokens=6", "lr=1e-3", "device=cpu", "temperature=1.0", "save_every=0"]


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


def config(model_dir: Path, *extra: str) -> Any:
    return resolve_config(None, None, [f"model={model_dir}", *BASE, *extra])


def rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def val_file(tmp_path: Path) -> Path:
    path = tmp_path / "val.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(3)))
    return path


@pytest.fixture
def validated_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The steps at which the trainer validates, in order."""
    seen: list[int] = []
    real = Validator.run

    def run(self: Validator, model: Any, step: int) -> dict[str, float]:
        seen.append(step)
        return real(self, model, step)

    monkeypatch.setattr(Validator, "run", run)
    return seen


def test_validation_runs_before_the_first_step_on_the_initial_weights(tiny_model_dir: Path, tmp_path: Path,
                                                                       val_file: Path,
                                                                       validated_steps: list[int]) -> None:
    cfg = config(tiny_model_dir, "steps=2", f"val_file={val_file}", "val_every=2", "val_max_new_tokens=4")
    run = train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    assert validated_steps == [0, 2]
    logged = rows(run)
    assert [r["step"] for r in logged] == [0, 1, 2]
    assert set(logged[0]) == {"step"} | {k for k in logged[2] if k.startswith("val_")}
    # Step 0 graded the model as loaded: its responses are those of the untrained weights.
    records = [json.loads(x) for x in (run / "validation/step_0.jsonl").read_text().splitlines()]
    tok = load_tokenizer(str(tiny_model_dir))
    fresh = Validator.from_config(cfg, tok)
    _, expected = _records(fresh, load_model(str(tiny_model_dir)))
    assert [r["response"] for r in records] == [r["response"] for r in expected]
    trained = [json.loads(x) for x in (run / "validation/step_2.jsonl").read_text().splitlines()]
    assert len(trained) == len(records) == 3


def _records(validator: Validator, model: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from oneshot_rlvr.eval.run import evaluate_problems
    from oneshot_rlvr.rollout.engine import make_engine

    engine = make_engine(model, validator.tokenizer, validator.settings)
    return evaluate_problems(engine, validator.problems, template=validator.template, tokenizer=validator.tokenizer,
                             sampling=validator.sampling, n=1, benchmark="validation")


def test_without_a_val_file_there_is_no_step_0_row(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = train(config(tiny_model_dir, "steps=1"), tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    assert [r["step"] for r in rows(run)] == [1]


def test_a_resumed_run_keeps_its_step_0_row_and_does_not_validate_again(tiny_model_dir: Path, tmp_path: Path,
                                                                        val_file: Path,
                                                                        validated_steps: list[int]) -> None:
    run = tmp_path / "run"
    extra = ("steps=1", f"val_file={val_file}", "val_every=1", "val_max_new_tokens=4")
    train(config(tiny_model_dir, *extra), run, reward_fn=has_letter_e, quiet=True)
    assert validated_steps == [0, 1]
    # Killed before its first checkpoint: the resume starts again from step 0, with the step-0 row logged.
    shutil.rmtree(run / "checkpoints")
    step0 = rows(run)[0]
    validated_steps.clear()
    train(config(tiny_model_dir, *extra), run, reward_fn=has_letter_e, quiet=True, resume=True)
    assert validated_steps == [1]
    logged = rows(run)
    assert [r["step"] for r in logged] == [0, 1] and logged[0] == step0
    # Resumed from a checkpoint, the run goes on from there.
    validated_steps.clear()
    assert main(["train", "--resume", str(run), "steps=2", "--quiet"]) == 0
    assert validated_steps == [2]
    assert [r["step"] for r in rows(run)] == [0, 1, 2]


@pytest.mark.parametrize(("stop", "recorded"), [("chat", "<|endoftext|>,<|im_end|>"), ("eos", "<|im_end|>"),
                                                 ("2", "<|im_end|>"), ("eos,<|im_start|>", "<|im_start|>,<|im_end|>")])
def test_config_yaml_records_the_resolved_stop_set_and_the_rollouts_use_it(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str, recorded: str) -> None:
    from oneshot_rlvr.rollout import engine
    from oneshot_rlvr.rollout.fast import FastRolloutEngine

    engines: list[FastRolloutEngine] = []

    class Recording(FastRolloutEngine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            engines.append(self)

    monkeypatch.setattr(engine, "FastRolloutEngine", Recording)
    run = train(config(tiny_model_dir, "steps=1", f"stop={stop}"), tmp_path / "run", reward_fn=has_letter_e,
                quiet=True)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["stop"] == recorded
    tok = load_tokenizer(str(tiny_model_dir))
    expected = resolve_stop(stop, tok, load_model(str(tiny_model_dir)))
    assert engines[0].stop_ids == expected == resolve_stop(load_config(run / "config.yaml").stop, tok)


def test_a_stop_token_the_tokenizer_lacks_stops_the_run_before_its_first_step(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    with pytest.raises(RlvrError, match=r"stop '<\|eot_id\|>': '<\|eot_id\|>' is not a token"):
        train(config(tiny_model_dir, "steps=1", "stop=<|eot_id|>"), tmp_path / "run", reward_fn=has_letter_e,
              quiet=True)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_the_paper_preset_stops_as_the_official_run_did() -> None:
    assert resolve_config("pi1-qwen2.5-math-1.5b", None, ["problem=x", "answer=1"]).stop == "eos"
    assert resolve_config("tiny-cpu", None, ["problem=x", "answer=1"]).stop == "chat"
