"""`rlvr demo --paper`: the pool run's history is ranked as `rlvr select` ranks it, the rows train on the ranks
they name, a rerun continues rather than repeats, and the default demo is untouched."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.demo import DemoOptions
from oneshot_rlvr.demo_paper import ROWS, RUNS, _check_base, choose, format_paper, run_paper, table_rows
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.select import format_ranking, load_history, rank

# 8 pool problems, 8 prompts a step, 2 steps: two epochs, so every example has a history of two accuracies.
SMALL = ["batch_size=8", "mini_batch_size=8", "n=2", "max_new_tokens=8", "micro_batch_size=16", "val_every=0"]
TOY = ["--seed", "0", "--steps", "2", "--test-problems", "8", "--eval-every", "1", "--pool-problems", "8"]


def test_pipeline_end_to_end_ranks_as_select_does_and_continues(tiny_model_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "paper"
    args = ["demo", "--paper", "--out", str(out), *TOY, f"model={tiny_model_dir}", *SMALL]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "[1/6] pool (all 8 pool problems) ..." in printed

    history = out / "pool" / "run" / "history.json"
    assert all(len(accs) == 2 for accs in json.loads(history.read_text()).values())
    ranking_tsv = (out / "ranking.tsv").read_text()
    assert main(["select", "--history", str(history)]) == 0
    assert capsys.readouterr().out == ranking_tsv  # what `rlvr select` prints for the pool run
    assert ranking_tsv == format_ranking(rank(load_history(history), "std"))
    ranked = [line.split("\t") for line in ranking_tsv.splitlines()]
    assert len(ranked) == 8

    summary = json.loads((out / "summary.json").read_text())
    rows = {row["row"]: row for row in summary["rows"]}
    assert [row["row"] for row in summary["rows"]] == list(ROWS)
    for name, r in (("pi1", 1), ("pi2", 2), ("median", 4)):  # the median of 8 ranks is rank (8 + 1) // 2
        assert (rows[name]["example"], rows[name]["rank"]) == (ranked[r - 1][1], r)
    zero = [key for _, key, score in ranked if float(score) == 0.0]
    assert summary["zero_variance"] == len(zero)
    chosen = [rows[name]["example"] for name in RUNS[1:]]
    assert rows["zero-variance"]["example"] in zero and len(set(chosen)) == len(chosen)
    for name in RUNS[1:]:  # each 1-shot run trained on its example alone
        assert list(json.loads((out / name / "run" / "history.json").read_text())) == [rows[name]["example"]]
    assert summary["command"] == "rlvr " + shlex.join(args)
    assert (out / "paper.md").read_text() == format_paper(summary["rows"]) + "\n"
    assert summary["command"] in (out / "index.html").read_text()
    assert (out / "paper.png").stat().st_size > 1000

    # A rerun reuses every finished row; a row interrupted mid-run, or other settings, stop it with the folder named.
    metrics = (out / "pi1" / "run" / "metrics.jsonl").stat().st_mtime_ns
    assert main(args) == 0
    assert capsys.readouterr().out.count("reused") == len(RUNS)
    assert (out / "pi1" / "run" / "metrics.jsonl").stat().st_mtime_ns == metrics
    again = json.loads((out / "summary.json").read_text())["rows"]
    assert [row["reused"] for row in again] == [None, *[True] * len(RUNS)]
    assert [{**row, "reused": None} for row in again] == [{**row, "reused": None} for row in summary["rows"]]
    (out / "pi2" / "summary.json").unlink()
    opts = DemoOptions(out=out, steps=2, test_problems=8, eval_every=1, pool_problems=8,
                       overrides=[f"model={tiny_model_dir}", *SMALL])
    with pytest.raises(RlvrError, match=re.escape(f"{out / 'pi2'}: holds a run but no summary.json")):
        run_paper(opts)
    with pytest.raises(RlvrError, match=re.escape(f"{out / 'pool' / 'summary.json'}: made with")):
        run_paper(dataclasses.replace(opts, seed=1))


def test_choose_takes_the_ranks_and_seeded_picks() -> None:
    ranking = [("a", 0.5), ("b", 0.4), ("c", 0.3), ("d", 0.2), ("e", 0.0), ("f", 0.0), ("g", 0.0)]
    picks = choose(ranking, seed=0)
    assert [p.row for p in picks] == list(RUNS[1:])
    assert [(p.example, p.rank, p.score) for p in picks[:3]] == [("a", 1, 0.5), ("b", 2, 0.4), ("d", 4, 0.2)]
    assert picks[3].example in {"e", "f", "g"} and picks[3].score == 0.0
    assert picks[4].example not in {p.example for p in picks[:4]}
    assert choose(ranking, seed=0) == picks  # seeded
    assert len({choose(ranking, seed=s)[3].example for s in range(20)}) > 1  # a draw, not the first zero

    # The median may itself have zero variance: the zero-variance row is then another example.
    many_zero = [("a", 0.5), ("b", 0.4), ("c", 0.0), ("d", 0.0), ("e", 0.0)]
    picks = choose(many_zero, seed=3)
    assert picks[2].example == "c" and picks[3].example in {"d", "e"}
    assert {picks[4].example} == {"d", "e"} - {picks[3].example}
    no_zero = [("a", 0.5), ("b", 0.4), ("c", 0.3), ("d", 0.2), ("e", 0.1)]
    assert choose(no_zero, seed=0)[3].example is None
    with pytest.raises(RlvrError, match="ranks 4 examples; the pipeline needs at least 5"):
        choose(no_zero[:4], seed=0)


def _summary(base: float, final: float) -> dict:
    fam = {"word": {"base_lenient": base, "final_lenient": final}}
    return {"base_strict": 0.0, "final_strict": final, "base_lenient": base, "final_lenient": final,
            "per_family": fam, "wall_seconds": 372.4}


def test_table_by_hand_with_a_skipped_row(caplog: pytest.LogCaptureFixture) -> None:
    def run(row: str, example: str, summary: dict | None, sat: int | None = None) -> dict:
        return {"row": row, "example": example, "rank": 1 if row == "pi1" else None,
                "score": 0.25 if row == "pi1" else None, "reused": False, "saturation_step": sat, "summary": summary}

    runs = [run("pool", "all", _summary(0.348, 0.88), 12), run("pi1", "train-00007", _summary(0.348, 0.692), 26),
            run("zero-variance", "", None)]
    lines = format_paper(table_rows(runs)).splitlines()
    assert lines[0] == "| run | example | std score | strict | lenient | word | first >= 90% | wall |"
    assert lines[2] == "| base | - | - | 0.0 | 34.8 | 34.8 | - | - |"
    assert lines[3] == "| pool | all | - | 0.0 -> 88.0 | 34.8 -> 88.0 | 88.0 | step 12 | 372 s |"
    assert lines[4] == "| pi1 | train-00007 (rank 1) | 0.250 | 0.0 -> 69.2 | 34.8 -> 69.2 | 69.2 | step 26 | 372 s |"
    assert lines[5] == "| zero-variance | none |  |  |  |  |  |  |"
    _check_base(runs)
    assert not caplog.records  # every run saw the base model as the pool run did
    runs[1]["summary"]["base_lenient"] = 0.35
    _check_base(runs)
    assert "base model's test accuracy in pi1 differs" in caplog.text


def test_default_demo_options_are_untouched(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[DemoOptions] = []

    def fake_run_demo(opts: DemoOptions) -> dict:
        seen.append(opts)
        raise RlvrError("stop here")

    monkeypatch.setattr("oneshot_rlvr.demo.run_demo", fake_run_demo)
    assert main(["demo"]) == 2
    assert seen == [DemoOptions()]
    assert main(["demo", "--paper", "--example", "train-00001"]) == 2
    assert "--paper chooses its examples" in capsys.readouterr().err and len(seen) == 1
