"""`rlvr grade --rule harness`: one case or a file, graded by the paper's harness rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main


def test_one_case_shows_what_the_harness_compared(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--rule", "harness", "--gold", "25", "--response", r"so \boxed{0.25}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["verdict: equivalent (harness rule, math500)", "gold answer: 25", "graded answer: 0.25"]
    # our rule takes x100 only with a percent sign
    assert main(["grade", "--gold", "25", "--response", r"so \boxed{0.25}"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "verdict: not equivalent (unequal)"


def test_benchmark_changes_the_gold_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["grade", "--rule", "harness", "--gold", r"$\boxed{5}$", "--response", r"\boxed{5 meters}"]
    assert main(args) == 0
    assert "verdict: equivalent" in capsys.readouterr().out
    assert main([*args, "--benchmark", "minerva_math"]) == 0
    out = capsys.readouterr().out
    assert "verdict: not equivalent" in out and "graded answer: 5meters" in out


def test_file_of_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"gold": "0.25", "prediction": r"\boxed{25}", "expected": True},
            {"gold": "5", "prediction": r"\boxed{5} and \boxed{}", "expected": False}]
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["grade", "--rule", "harness", "--file", str(cases)]) == 0
    assert capsys.readouterr().out.splitlines() == ["line 1: true", "line 2: false", "agreement: 2/2 (100.0%)"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--boxed"], "--boxed is a rule of ours"),
    (["--benchmark", "gsm9k"], "--benchmark 'gsm9k'"),
])
def test_bad_options_are_one_line(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grade", "--rule", "harness", "--gold", "1", "--response", "1", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
