"""The ranking and the written files against the paper's published data (skipped without ../shared)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import shared_data_or_skip
from oneshot_rlvr.cli import main
from oneshot_rlvr.select import load_history, rank_std

TRAIN = "data/train/one_shot_rlvr"


def test_acc_step_500_ranks_the_papers_examples() -> None:
    ranking = rank_std(load_history(shared_data_or_skip("data/acc_step_500.json")))
    assert len(ranking) == 1209
    ids = [k for k, _ in ranking]
    assert ids[:3] == ["124", "267", "531"]
    assert ids[12] == "682"
    stds = dict(ranking)
    assert round(stds["124"], 4) == 0.4068
    assert round(stds["267"], 4) == 0.3961
    assert round(stds["682"], 4) == 0.2726
    assert sum(1 for _, s in ranking if s == 0.0) == 104


def _select(tmp_path: Path, ranks: str, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    history = shared_data_or_skip("data/acc_step_500.json")
    pool = shared_data_or_skip(f"{TRAIN}/dsr_sub.parquet")
    out = tmp_path / name
    code = main(["select", "--history", str(history), "--pool", str(pool), "--rank", ranks,
                 "--copies", "128", "--out", str(out)])
    assert code == 0
    assert "wrote 128 rows" in capsys.readouterr().out
    return out


def test_written_pi1_matches_the_shipped_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = pq.read_table(shared_data_or_skip(f"{TRAIN}/pi1_r128.parquet"))
    written = pq.read_table(_select(tmp_path, "1", "pi1.parquet", capsys))
    assert written.schema.equals(shipped.schema)  # field names, order, types (pandas metadata aside)
    assert written.num_rows == shipped.num_rows == 128
    for ours, theirs in zip(written.to_pylist(), shipped.to_pylist(), strict=True):
        assert ours["prompt"] == theirs["prompt"]
        assert ours["reward_model"] == theirs["reward_model"]
        assert ours == theirs


def test_written_pi1_pi13_matches_the_shipped_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = pq.read_table(shared_data_or_skip(f"{TRAIN}/merge_pi1_pi13_r128.parquet"))
    written = pq.read_table(_select(tmp_path, "1,13", "pi1_pi13.parquet", capsys))
    assert written.schema.equals(shipped.schema)

    def per_index(rows: list[dict]) -> Counter[tuple[int, str, str]]:
        return Counter((r["extra_info"]["index"], r["prompt"][0]["content"], r["reward_model"]["ground_truth"])
                       for r in rows)

    counts = per_index(written.to_pylist())
    assert counts == per_index(shipped.to_pylist())
    assert sorted((i, n) for (i, _, _), n in counts.items()) == [(124, 64), (682, 64)]


def test_written_jsonl_holds_the_same_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    shipped = pq.read_table(shared_data_or_skip(f"{TRAIN}/pi1_r128.parquet")).to_pylist()
    path = _select(tmp_path, "1", "pi1.jsonl", capsys)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == shipped
