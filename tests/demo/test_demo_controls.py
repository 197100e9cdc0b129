"""`rlvr demo --reward/--loss` and `--controls`: the settings reach the run, and the table is built from the runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.demo import DemoOptions
from oneshot_rlvr.demo_controls import CONTROLS, families_moved, format_controls, kept_rising, run_controls, slug
from oneshot_rlvr.errors import RlvrError

SMALL = ["batch_size=4", "mini_batch_size=4", "n=2", "max_new_tokens=8", "micro_batch_size=4"]


def test_demo_reward_and_loss_flags_reach_the_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    args = ["demo", "--out", str(tmp_path / "d"), "--steps", "1", "--test-problems", "4", "--eval-every", "1",
            "--reward", "format", "--loss", "em", "--quiet", f"model={tiny_model_dir}", *SMALL]
    assert main(args) == 0
    config = (tmp_path / "d/run/config.yaml").read_text()
    assert "reward: format" in config and "loss: em" in config
    summary = json.loads((tmp_path / "d/summary.json").read_text())
    assert summary["reward"] == "format" and summary["loss"] == "em"


def test_controls_run_every_row_and_write_the_table(tiny_model_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = DemoOptions(out=tmp_path / "c", steps=1, test_problems=4, val_problems=2, pool_problems=4, eval_every=1,
                       overrides=[f"model={tiny_model_dir}", *SMALL])
    table = run_controls(base, seeds=1)
    progress = capsys.readouterr().out.splitlines()
    assert progress[0] == f"[1/{len(CONTROLS)}] true reward, seed 0 ..."  # the run under way, then its result
    done = [line for line in progress if not line.endswith("...")]
    assert len(done) == len(CONTROLS) and done[0].startswith(f"[1/{len(CONTROLS)}] true reward, seed 0: lenient")
    assert table.count("\n") == len(CONTROLS) + 1 and (tmp_path / "c/controls.md").read_text() == table + "\n"
    folders = sorted(p.name for p in (tmp_path / "c").iterdir() if p.is_dir())
    assert folders == sorted(f"{slug(c.name)}-seed0" for c in CONTROLS)
    random_run = (tmp_path / "c/random-seed0/run/config.yaml").read_text()
    assert "reward: random" in random_run and "mini_batch_size: 1" in random_run  # 4 updates per batch of 4


def _summary(base: float, final: float, fam: dict[str, tuple[float, float]], post: dict | None) -> dict:
    return {"base_strict": base, "final_strict": final, "base_lenient": base, "final_lenient": final,
            "per_family": {f: {"base_lenient": b, "final_lenient": a} for f, (b, a) in fam.items()},
            "post_saturation": post, "wall_seconds": 12.0}


def test_families_moved_and_kept_rising_by_hand() -> None:
    runs = [_summary(0.1, 0.2, {"word": (0.1, 0.3), "linear": (0.5, 0.48)}, None),
            _summary(0.1, 0.3, {"word": (0.1, 0.2), "linear": (0.5, 0.40)}, None)]
    # word: +0.2 and +0.1 -> +15 points; linear: -0.02 and -0.10 -> -6 points; both at least 5
    assert families_moved(runs) == "word +15.0, linear -6.0"
    assert families_moved(runs, threshold=0.1) == "word +15.0"
    assert kept_rising(runs[0]) == "no saturation"
    rising = {"at_saturation": {"lenient": 0.2}, "best_after": {"lenient": 0.25}}
    assert kept_rising({"post_saturation": rising}) == "yes"
    assert kept_rising({"post_saturation": {**rising, "best_after": {"lenient": 0.2}}}) == "no"
    table = format_controls([{"control": "true reward", "runs": runs}])
    assert "| true reward | 10.0 (10.0, 10.0) | 25.0 (20.0, 30.0) |" in table and "12 / 12" in table


def test_controls_run_again_reuse_finished_rows_and_refuse_a_half_run(tiny_model_dir: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = DemoOptions(out=tmp_path / "c", steps=1, test_problems=4, val_problems=2, pool_problems=4, eval_every=1,
                       overrides=[f"model={tiny_model_dir}", *SMALL])
    table = run_controls(base, seeds=1)
    capsys.readouterr()
    metrics = {p: p.stat().st_mtime_ns for p in (tmp_path / "c").glob("*/run/metrics.jsonl")}
    assert run_controls(base, seeds=1) == table  # every row read back, none run again
    progress = capsys.readouterr().out.splitlines()
    assert len(progress) == len(CONTROLS) and all("; reused " in line for line in progress)
    assert {p: p.stat().st_mtime_ns for p in metrics} == metrics
    (tmp_path / "c/format-only-seed0/summary.json").unlink()  # a row stopped mid-run: its run, no summary
    with pytest.raises(RlvrError, match=re.escape("format-only-seed0: holds a run but no summary.json")):
        run_controls(base, seeds=1)
    other = DemoOptions(**{**base.__dict__, "steps": 2})
    with pytest.raises(RlvrError, match=re.escape("true-reward-seed0/summary.json: made with")):
        run_controls(other, seeds=1)
