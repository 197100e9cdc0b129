"""`rlvr grade`: one pair or a JSONL file of cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main


def test_grade_one_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--gold", "2x + 3", "--response", r"so \boxed{3+2x}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "verdict: equivalent (equal)"
    assert "gold answer: 2x + 3" in out
    assert "graded answer: 3+2x" in out
    assert "boxed extraction: 3+2x" in out


def test_grade_boxed_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--gold", "5", "--response", "the answer is 5", "--boxed"]) == 0
    out = capsys.readouterr().out
    assert "verdict: not equivalent (no-answer)" in out
    assert "graded answer: (none)" in out
    assert "lenient extraction: 5" in out


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_grade_file_with_agreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = _write(
        tmp_path / "cases.jsonl",
        [
            {"gold": r"\frac{1}{2}", "prediction": r"\boxed{0.5}", "expected": True},
            {"gold": "3", "prediction": r"\boxed{4}", "expected": True},  # wrong expectation on purpose
            "",
            {"gold": "(1,2]", "prediction": "(1, 2]"},
        ],
    )
    assert main(["grade", "--file", str(cases)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["line 1: true", "line 2: false  (expected true)", "line 4: true", "agreement: 1/2 (50.0%)"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["gold"]', "expected a JSON object"),
        ({"gold": 5, "prediction": "5"}, "field 'gold' must be a string"),
        ({"gold": "5"}, "field 'prediction' must be a string"),
        ({"gold": "5", "prediction": "5", "expected": "yes"}, "field 'expected' must be true or false"),
    ],
)
def test_bad_rows_name_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: object, message: str
) -> None:
    cases = _write(tmp_path / "bad.jsonl", [{"gold": "1", "prediction": "1"}, row])
    assert main(["grade", "--file", str(cases)]) == 2
    err = capsys.readouterr().err
    assert f"{cases}:2: {message}" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--gold", "1"]) == 2
    assert "give --gold and --response" in capsys.readouterr().err
    assert main(["grade", "--file", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: cannot read it" in capsys.readouterr().err
    assert main(["grade", "--gold", "1", "--response", "1", "--timeout", "0"]) == 2
    assert "--timeout must be positive" in capsys.readouterr().err
    empty = _write(tmp_path / "empty.jsonl", [""])
    assert main(["grade", "--file", str(empty)]) == 2
    assert "no cases in it" in capsys.readouterr().err
