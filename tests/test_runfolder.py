"""The run folder's one atomic writer and its paths."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import RunFolder, read_json, read_jsonl, write_atomic


def test_the_writer_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    write_atomic(path, '{"a": [1.0]}')
    write_atomic(path, b'{"b": [0.5]}')
    assert read_json(path) == {"b": [0.5]}
    write_atomic(path, lambda f: f.write(b'{"c": []}'))
    assert read_json(path) == {"c": []}
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_a_writer_that_fails_keeps_the_old_file_and_removes_its_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("old", encoding="utf-8")

    def half_then_fail(f: io.BufferedIOBase) -> None:
        f.write(b"new, half written")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_the_layout_names_every_file_of_a_run(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.config == tmp_path / "config.yaml"
    assert run.metrics == tmp_path / "metrics.jsonl"
    assert run.history == tmp_path / "history.json"
    assert run.checkpoint(20) == tmp_path / "checkpoints" / "step_20"
    assert run.validation_file(3) == tmp_path / "validation" / "step_3.jsonl"
    assert run.eval_dir(0) == tmp_path / "eval" / "0"
    assert run.report == tmp_path / "report" / "index.html"
    assert not run.holds_run()
    run.metrics.write_text('{"step": 1}\n', encoding="utf-8")
    assert run.holds_run() and read_jsonl(run.metrics) == [{"step": 1}]


def test_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n[2]\n', encoding="utf-8")
    with pytest.raises(RlvrError, match=r"metrics.jsonl, line 2: expected a JSON object"):
        read_jsonl(path)
