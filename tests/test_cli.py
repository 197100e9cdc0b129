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


def test_a_value_that_starts_with_a_minus_sign_is_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    # The README's negative gold: argparse took "-\frac..." for an unknown option ("expected one argument").
    assert main(["grade", "--gold", r"-\frac{2023}{2024}", "--response", r"\boxed{-\frac{2023}{2024}}"]) == 0
    assert "verdict: equivalent" in capsys.readouterr().out
    assert main(["grade", "--gold", "-(x+1)", "--response", r"\boxed{-x-1}"]) == 0
    assert "verdict: equivalent" in capsys.readouterr().out


def test_a_missing_value_names_the_option_equals_form(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["grade", "--gold", "--response", "x"])
    assert exit_info.value.code == 2
    assert "--option=VALUE" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_with_status_1(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import oneshot_rlvr.commands.grade as grade

    def broken(args: object) -> int:
        raise AttributeError("module 'torch._C' has no attribute '_cuda_setDevice'")

    monkeypatch.setattr(grade, "_grade_one", broken)
    assert main(["grade", "--gold", "1", "--response", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "AttributeError" in err and "-v" in err and "Traceback" not in err
    with pytest.raises(AttributeError):  # -v shows the traceback
        main(["-v", "grade", "--gold", "1", "--response", "1"])


def test_a_closed_pipe_is_quiet() -> None:
    # `rlvr grade ... | head -1`: the reader is gone before the output is flushed.
    proc = subprocess.Popen([sys.executable, "-m", "oneshot_rlvr", "grade", "--gold", "1", "--response", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_help_config_groups_types_and_wraps(capsys: pytest.CaptureFixture[str]) -> None:
    from oneshot_rlvr.config import TrainConfig, field_groups

    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    groups = field_groups()
    assert list(groups) == ["data", "model", "rollout", "objective", "optimisation", "checkpoints", "evaluation",
                            "performance"]
    assert sorted(n for names in groups.values() for n in names) == sorted(TrainConfig.__dataclass_fields__)
    assert all(f"\n{group}:\n" in f"\n{out}" for group in groups)
    assert "  steps: int = 2000\n" in out and "  rollout_cuda_graphs: bool = True\n" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_help_config_shows_the_preset_and_config_values(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("lr: 0.5\n")
    assert main(["train", "--help-config", "--preset", "tiny-cpu", "--config", str(yaml_file), "seed=3"]) == 0
    out = capsys.readouterr().out
    assert "  steps: int = 80  (default 2000)\n" in out
    assert "  lr: float = 0.5  (default 1e-06)\n" in out and "  seed: int = 3  (default 0)\n" in out


@pytest.mark.parametrize(("typo", "meant"), [
    ("stpes", "steps"), ("batchsize", "batch_size"), ("max_grad_norm", "grad_clip"), ("learning_rate", "lr"),
])
def test_did_you_mean(typo: str, meant: str, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "r"), f"{typo}=1"]) == 2
    assert f"did you mean {meant}" in capsys.readouterr().err
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(f"{typo}: 1\n")
    assert main(["train", "--out", str(tmp_path / "r"), "--config", str(yaml_file)]) == 2
    err = capsys.readouterr().err
    assert str(yaml_file) in err and f"did you mean {meant}" in err
