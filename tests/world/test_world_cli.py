"""`rlvr world export` and argument errors of `rlvr world`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.world.problems import FAMILIES, split_of


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_writes_valid_rows_of_the_split(tmp_path: Path) -> None:
    out = tmp_path / "test.jsonl"
    assert main(["world", "export", "--split", "test", "--out", str(out), "--n", "25"]) == 0
    rows = _rows(out)
    assert len(rows) == 25
    assert all(set(r) == {"id", "question", "answer", "family", "split"} for r in rows)
    assert len({r["id"] for r in rows}) == 25
    assert all(r["split"] == "test" == split_of(r["question"]) for r in rows)
    assert {r["family"] for r in rows} == set(FAMILIES)
    assert all(int(r["answer"]) >= 0 for r in rows)


def test_export_is_deterministic_and_loads_as_problems(tmp_path: Path) -> None:
    from oneshot_rlvr.data.problems import load_problems

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        assert main(["world", "export", "--split", "val", "--out", str(path), "--n", "10", "--seed", "3"]) == 0
    assert a.read_text() == b.read_text()
    problems = load_problems(str(a))
    assert [p.answer for p in problems] == [r["answer"] for r in _rows(a)]


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["world", "export", "--split", "val", "--out", str(tmp_path / "x.jsonl"), "--n", "-2"]) == 2
    assert ">= 0" in capsys.readouterr().err
    assert main(["world", "pretrain", "--tokens", "0", "--out", str(tmp_path / "m")]) == 2
    assert main(["world"]) == 2
    assert main(["world", "pretrain", "--mix", "sloppy=0.5", "--out", str(tmp_path / "m")]) == 2
    assert "careless" in capsys.readouterr().err  # names the valid keys
    assert main(["world", "pretrain", "--mix", "careless=lots", "--out", str(tmp_path / "m")]) == 2
    assert main(["world", "pretrain", "--mix", "boxed_careful=2", "--out", str(tmp_path / "m")]) == 2
    assert main(["world", "pretrain", "--init", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert main(["world", "export", "--split", "val", "--out", str(tmp_path / "missing" / "x.jsonl")]) == 2


def test_every_world_option_has_help_and_pretrain_does_not_claim_to_resume_a_finished_run() -> None:
    import argparse

    from oneshot_rlvr.cli import build_parser

    world = next(a for a in build_parser()._subparsers._group_actions[0].choices["world"]._actions  # type: ignore[union-attr]
                 if isinstance(a, argparse._SubParsersAction))
    for name, sub in world.choices.items():
        for action in sub._actions:
            assert action.help, f"rlvr world {name} {action.option_strings}: no help text"
    out_help = next(a.help for a in world.choices["pretrain"]._actions if "--out" in a.option_strings)
    assert "--init" in out_help and "interrupted" in out_help


def test_pretrain_keeps_a_finished_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m/pretrain.json").write_text("{}")
    assert main(["world", "pretrain", "--out", str(tmp_path / "m")]) == 2
    assert "--init" in capsys.readouterr().err and (tmp_path / "m/pretrain.json").read_text() == "{}"
