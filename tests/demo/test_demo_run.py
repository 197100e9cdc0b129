"""`rlvr demo` end to end on a small budget: train, evaluate before/after, summary, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.demo import DemoOptions, format_summary, post_saturation, run_demo
from oneshot_rlvr.errors import RlvrError

SMALL = ["batch_size=2", "mini_batch_size=2", "n=2", "max_new_tokens=8", "micro_batch_size=4"]


def test_demo_writes_summary_run_and_plot(tiny_model_dir: Path, tmp_path: Path) -> None:
    opts = DemoOptions(out=tmp_path / "demo", steps=2, test_problems=10, val_problems=4, pool_problems=5,
                       eval_every=1, overrides=[f"model={tiny_model_dir}", *SMALL], quiet=True)
    summary = run_demo(opts)
    written = json.loads((tmp_path / "demo/summary.json").read_text())
    assert written == summary
    for key in ("base_strict", "final_strict", "base_lenient", "final_lenient"):
        assert 0.0 <= summary[key] <= 1.0
    assert set(summary["per_family"]) == {"arithmetic", "function", "linear", "remainder", "word"}
    assert [c["step"] for c in summary["test_accuracy_by_step"]] == [0, 1, 2]
    assert len(summary["train_example_accuracy"]) == 2 and summary["steps"] == 2
    assert summary["example"]["id"] == "train-00002" and summary["wall_seconds"] > 0
    assert (tmp_path / "demo/saturation.png").stat().st_size > 1000
    assert (tmp_path / "demo/run/report/index.html").exists()
    # Test problems never appear in the training pool (the world's splits are disjoint).
    test_q = {json.loads(x)["question"] for x in (tmp_path / "demo/data/test.jsonl").read_text().splitlines()}
    pool_q = {json.loads(x)["question"] for x in (tmp_path / "demo/data/pool.jsonl").read_text().splitlines()}
    assert not test_q & pool_q
    table = format_summary(summary)
    assert "strict before" in table and "word" in table


def test_demo_cli_entropy_only_and_bad_example(tiny_model_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--out", str(tmp_path / "d"), "--steps", "1", "--test-problems", "4", "--eval-every", "1",
            "--entropy-only", "--quiet", f"model={tiny_model_dir}", *SMALL]
    assert main(args) == 0
    summary = json.loads((tmp_path / "d/summary.json").read_text())
    assert summary["entropy_only"] is True
    config = (tmp_path / "d/run/config.yaml").read_text()
    assert "pg_coef: 0.0" in config
    assert "strict before" in capsys.readouterr().out
    with pytest.raises(RlvrError, match="not in the world's training pool"):
        run_demo(DemoOptions(out=tmp_path / "e", example="train-99999", pool_problems=5,
                             overrides=[f"model={tiny_model_dir}"]))


@pytest.mark.parametrize(("example", "expected", "steps"), [("train-00000,train-00001", 2, 1), ("all", 4, 2)])
def test_k_shot_and_whole_pool(tiny_model_dir: Path, tmp_path: Path, example: str, expected: int,
                               steps: int) -> None:
    opts = DemoOptions(out=tmp_path / "k", example=example, steps=steps, test_problems=4, val_problems=2,
                       pool_problems=4, eval_every=1, overrides=[f"model={tiny_model_dir}", *SMALL], quiet=True)
    summary = run_demo(opts)
    assert len(summary["examples"]) == expected
    history = json.loads((tmp_path / "k/run/history.json").read_text())
    # Every example got an accuracy for each finished epoch: 2 copies fill one step; the pool of 4 takes 2.
    assert sorted(history) == sorted(summary["examples"]) and all(len(v) == 1 for v in history.values())
    assert format_summary(summary).startswith(f"{expected}-shot RLVR")


def _point(step: int, lenient: float) -> dict:
    return {"step": step, "lenient": lenient, "strict": lenient}


def test_post_saturation_compares_the_checkpoint_at_saturation_with_later_ones() -> None:
    train = [(1, 0.2), (2, 0.5), (3, 0.95), (4, 0.8), (5, 1.0), (6, 1.0)]
    curve = [_point(0, 0.1), _point(2, 0.4), _point(4, 0.7), _point(6, 0.6)]
    post = post_saturation(train, curve)
    assert post is not None and post["saturation_step"] == 3  # the first step at >= 90%, not the last
    assert post["at_saturation"]["step"] == 2 and post["best_after"] == _point(4, 0.7)
    assert post["final"] == _point(6, 0.6)
    summary_line = format_summary({"example": {"id": "x", "family": "word"}, "steps": 6, "wall_seconds": 1,
                                   "base_strict": 0, "final_strict": 0.6, "base_lenient": 0.1,
                                   "final_lenient": 0.6, "per_family": {}, "train_example_accuracy":
                                   [a for _, a in train], "post_saturation": post}).splitlines()[-1]
    assert "step 3" in summary_line and "40.0% (step 2) -> 70.0%" in summary_line
    assert post_saturation([(1, 0.5), (2, 0.8)], curve) is None  # never saturated
    assert post_saturation([(1, 0.5), (6, 0.95)], curve) is None  # no checkpoint after saturation
