"""The `rlvr` front door: help lists the subcommands, bad usage is one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oneshot_rlvr.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, _ in COMMANDS:
        assert name in out
    assert {"train", "eval", "grade", "select", "export"} <= {name for name, _ in COMMANDS}


@pytest.mark.parametrize("argv", [["frobnicate"], ["train", "--no-such-flag"]])
def test_bad_usage_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_help_does_not_import_torch() -> None:
    code = "import sys; from oneshot_rlvr.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
