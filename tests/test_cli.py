"""The `rlvr` front door: help lists the subcommands, bad usage is one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oneshot_rlvr.cli import COMMANDS, build_parser, main, parse_args


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, _ in COMMANDS:
        assert name in out
    assert {"train", "eval", "grade", "select", "export"} <= {name for name, _ in COMMANDS}


@pytest.mark.parametrize("argv", [
    ["frobnicate"], ["train", "--no-such-flag"], ["train", "a=1", "--out", "d", "steps"],
    ["train", "--out", "d", "steps=2", "--no-such-flag"], ["eval", "--model", "m", "x=1"],  # (eval takes no settings)
])
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


def test_settings_may_follow_options_and_keep_their_order() -> None:
    args = parse_args(build_parser(), ["train", "--preset", "tiny-cpu", "steps=2", "--out", "run", "lr=1e-5",
                                       "--quiet", "steps=3"])
    assert args.settings == ["steps=2", "lr=1e-5", "steps=3"]  # (the last steps= wins, as on one run of words)
    assert args.out == "run" and args.quiet
    args = parse_args(build_parser(), ["demo", "--out", "d", "steps=5"])
    assert args.settings == ["steps=5"]
