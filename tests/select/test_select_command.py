"""`rlvr select` end to end on small files; the history run with a stand-in trainer."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from oneshot_rlvr.cli import main

HISTORY = {"7": [0.0, 0.5, 1.0], "8": [0.5, 0.5, 0.5], "9": [0.0, 1.0, 0.0, 1.0]}
# population stds: 7 -> sqrt(1/6) = 0.408248, 8 -> 0, 9 -> 0.5


@pytest.fixture
def history_file(tmp_path: Path) -> Path:
    path = tmp_path / "history.json"
    path.write_text(json.dumps(HISTORY))
    return path


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.jsonl"
    rows = [{"id": i, "question": f"What is {i}+1?", "answer": str(i + 1)} for i in (7, 8, 9)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prints_tsv_ranking(history_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "--history", str(history_file)]) == 0
    assert capsys.readouterr().out == "1\t9\t0.500000\n2\t7\t0.408248\n3\t8\t0.000000\n"


def test_top_and_json(history_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "--history", str(history_file), "--top", "2", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["rank"], r["index"]) for r in rows] == [(1, "9"), (2, "7")]
    assert rows[1]["score"] == pytest.approx((1 / 6) ** 0.5)


def test_writes_training_file_for_ranks(history_file: Path, pool_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "two.jsonl"
    args = ["select", "--history", str(history_file), "--pool", str(pool_file), "--rank", "1,3",
            "--copies", "4", "--out", str(out)]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["extra_info"]["index"] for r in rows] == [9, 9, 8, 8]
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["10", "10", "9", "9"]
    assert "wrote 4 rows of example(s) 9, 8" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "with_pool", "message"),
    [
        (["--rank", "1,2", "--copies", "3"], True, "--copies 3 does not split evenly over 2 examples"),
        (["--rank", "4"], True, "--rank '4': each rank must be a whole number from 1 to 3"),
        (["--rank", "1"], False, "needs --pool, --rank and --out together"),
        (["--top", "0"], False, "--top 0: must be at least 1"),
        (["batch_size=4"], False, "only for the history run"),
    ],
)
def test_errors_are_one_line_with_status_2(history_file: Path, pool_file: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], extra: list[str],
                                           with_pool: bool, message: str) -> None:
    args = ["select", "--history", str(history_file), *extra]
    if with_pool:
        args += ["--pool", str(pool_file), "--out", str(tmp_path / "x.parquet")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_bad_history_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"3": [0.5], "4": [2.0]}))
    assert main(["select", "--history", str(path)]) == 2
    assert "bad.json: example '4', epoch 0: accuracy 2.0" in capsys.readouterr().err


def _fake_trainer(monkeypatch: pytest.MonkeyPatch, calls: list[dict[str, Any]]) -> None:
    def train(config: Any, out_dir: Path, *, resume: bool = False) -> Path:
        calls.append({"config": config, "out": out_dir, "resume": resume})
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "history.json").write_text(json.dumps(HISTORY))
        return out_dir

    monkeypatch.setitem(sys.modules, "oneshot_rlvr.train", types.SimpleNamespace(train=train))


def test_history_run_trains_on_the_pool_then_ranks(monkeypatch: pytest.MonkeyPatch, pool_file: Path,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[dict[str, Any]] = []
    _fake_trainer(monkeypatch, calls)
    out = tmp_path / "run"
    args = ["select", "--pool", str(pool_file), "--model", "builtin:tiny", "--steps", "3", "--out", str(out),
            "batch_size=2", "mini_batch_size=2", "--top", "1"]
    assert main(args) == 0
    [call] = calls
    cfg = call["config"]
    assert (cfg.train_file, cfg.model, cfg.steps, cfg.batch_size) == (str(pool_file), "builtin:tiny", 3, 2)
    assert call["out"] == out and call["resume"] is False
    assert (out / "ranking.tsv").read_text() == "1\t9\t0.500000\n2\t7\t0.408248\n3\t8\t0.000000\n"
    assert capsys.readouterr().out == "1\t9\t0.500000\n"


def test_history_run_argument_errors(monkeypatch: pytest.MonkeyPatch, pool_file: Path, history_file: Path,
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[dict[str, Any]] = []
    _fake_trainer(monkeypatch, calls)
    base = ["select", "--pool", str(pool_file), "--model", "m"]
    cases = [
        ([*base, "--out", str(tmp_path)], "--model needs --steps N and --out DIR"),
        ([*base, "--steps", "2", "--out", str(tmp_path), "steps=5"], "setting steps comes from"),
        ([*base, "--steps", "2", "--out", str(tmp_path), "--history", str(history_file)], "not both"),
        (["select", "--model", "m", "--steps", "2", "--out", str(tmp_path)], "--model needs --pool"),
    ]
    for args, message in cases:
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert calls == []


def test_history_run_with_the_real_trainer(tiny_model_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from oneshot_rlvr.select import rank_std

    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": f"p{i}", "question": f"What is {i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(4)))
    out = tmp_path / "run"
    args = ["select", "--pool", str(pool), "--model", str(tiny_model_dir), "--steps", "4", "--out", str(out),
            "batch_size=2", "mini_batch_size=2", "micro_batch_size=4", "n=2", "max_new_tokens=4", "device=cpu",
            "save_every=0"]
    assert main(args) == 0
    history = json.loads((out / "history.json").read_text())
    # 4 steps x 2 prompts over a pool of 4: every example seen in 2 epochs, keyed by the pool's ids
    assert sorted(history) == ["p0", "p1", "p2", "p3"]
    assert all(len(accs) == 2 for accs in history.values())
    lines = (out / "ranking.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == [k for k, _ in rank_std(history)]
    assert capsys.readouterr().out.splitlines() == lines


def test_history_may_be_a_run_folder(history_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "--history", str(history_file.parent)]) == 0
    assert capsys.readouterr().out == "1\t9\t0.500000\n2\t7\t0.408248\n3\t8\t0.000000\n"


def test_seed_without_random_is_an_error(history_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["select", "--history", str(history_file), "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "--method" in err
    assert main(["select", "--history", str(history_file), "--seed", "3", "--method", "random"]) == 0


def test_out_over_an_existing_file_is_an_error(history_file: Path, pool_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine.jsonl"
    out.write_text("keep me\n")
    assert main(["select", "--history", str(history_file), "--pool", str(pool_file), "--rank", "1",
                 "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err and out.read_text() == "keep me\n"


def test_a_ranking_of_ties_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"1": [0.0, 0.0], "2": [0.0, 0.0], "3": [0.0]}))
    assert main(["select", "--history", str(flat)]) == 0
    assert "all 3 examples score 0" in caplog.text
    caplog.clear()
    assert main(["select", "--history", str(flat.parent / "flat.json"), "--method", "lim"]) == 0
    assert "all 3 examples score" in caplog.text
