"""Histories exported from a W&B run: the per-example accuracy table (index, accuracy, history), as the table's
JSON file or its CSV download, rank exactly as the same history in acc_step_500.json form."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import shared_data_or_skip
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.select import load_history, rank_std

COLUMNS = ["index", "accuracy", "history"]


def table_json(path: Path, rows: list[list]) -> Path:
    # The layout of a W&B Table's .table.json (what the run's media/table files and downloads hold).
    path.write_text(json.dumps({"_type": "table", "columns": COLUMNS, "data": rows, "ncols": 3, "nrows": len(rows)}))
    return path


def table_csv(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows([[i, acc, json.dumps(h)] for i, acc, h in rows])
    return path


def test_table_json_keeps_each_examples_latest_history(tmp_path: Path) -> None:
    # Each step's table repeats every example's history so far: the later, longer one wins.
    rows = [[124, 0.5, [0.5]], [267, 1.0, [1.0]], [124, 0.875, [0.5, 0.875]], [267, 0.0, [1.0, 0.0]]]
    history = load_history(table_json(tmp_path / "acc.table.json", rows))
    assert history == {"124": [0.5, 0.875], "267": [1.0, 0.0]}
    csv_history = load_history(table_csv(tmp_path / "acc.csv", rows))
    assert csv_history == history
    assert rank_std(history)[0] == ("267", 0.5)


def test_the_published_history_ranks_the_same_through_a_table(tmp_path: Path) -> None:
    published = json.loads(shared_data_or_skip("data/acc_step_500.json").read_text())
    rows = [[int(k), accs[-1], accs] for k, accs in published.items()]
    for path in (table_json(tmp_path / "t.table.json", rows), table_csv(tmp_path / "t.csv", rows)):
        ranking = rank_std(load_history(path))
        assert [key for key, _ in ranking[:3]] == ["124", "267", "531"]
        assert ranking == rank_std({k: [float(a) for a in v] for k, v in published.items()})


@pytest.mark.parametrize(("text", "message"), [
    ("index,accuracy\n1,0.5\n",
     r"a W&B table needs the columns index, history; missing history \(it has index, accuracy\)"),
    ("index,accuracy,history\n1,0.5,not-a-list\n", r"row 1, field 'history': 'not-a-list' is not a JSON list"),
    ("index,accuracy,history\n1,0.5,\"[0.5, 2]\"\n", r"example '1', epoch 1: accuracy 2 is not a number in \[0, 1\]"),
    ("index,accuracy,history\n1,0.5\n", r"row 1 does not have the 3 columns of the header"),
    ("", r"empty CSV; expected columns index, history"),
])
def test_bad_exports_name_the_file_row_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text(text)
    with pytest.raises(RlvrError, match=rf"^{path}: {message}"):
        load_history(path)
