"""`rlvr train`: run 1-shot RLVR from a preset, a YAML file and KEY=VALUE settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import RunFolder

HELP = "train a model with RLVR on one or a few examples (GRPO, Dr. GRPO)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="override any setting (see --help-config)")
    parser.add_argument("--preset", help="start from a preset: pi1-qwen2.5-math-1.5b, tiny-cpu")
    parser.add_argument("--config", help="YAML file of settings")
    parser.add_argument("--out", help="run folder (metrics.jsonl, history.json, checkpoints/)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest checkpoint")
    parser.add_argument("--pool", help="problem pool to pick the example from (with --index)")
    parser.add_argument("--index", help="example id(s) in the pool, comma-separated (124 = pi1)")
    parser.add_argument("--problem", help="an inline training problem (with --answer)")
    parser.add_argument("--answer", help="gold answer of --problem")
    parser.add_argument("--train-file", help="problem file: JSONL (question/answer) or verl parquet")
    parser.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")
    parser.add_argument("--help-config", action="store_true",
                        help="list every setting by group with its type, default and meaning "
                             "(with --preset, --config and KEY=VALUE: the values they give)")

# Options that describe a new run; a resumed run takes all of them from its config.yaml.
_NEW_RUN_OPTIONS = ("out", "preset", "config", "pool", "index", "problem", "answer", "train_file")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_resume(args: argparse.Namespace) -> Path:
    given = [_option(name) for name in _NEW_RUN_OPTIONS if getattr(args, name) is not None]
    if given:
        raise RlvrError(f"--resume {args.resume} continues that run with its own config.yaml; drop {given[0]} "
                        "(settings to change go as KEY=VALUE)")
    out = Path(args.resume)
    if not RunFolder(out).config.exists():
        raise RlvrError(f"{out}: no config.yaml, so not a run folder to resume")
    return out


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.config import apply_overrides, describe_settings, load_config, parse_key_values, resolve_config

    flags = {"pool": args.pool, "index": args.index, "problem": args.problem, "answer": args.answer,
             "train_file": args.train_file}
    overrides = list(args.settings) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.help_config:
        print(describe_settings(resolve_config(args.preset, args.config, overrides), width=_width()))
        return 0
    if args.resume:
        out = _check_resume(args)
        config = apply_overrides(load_config(RunFolder(out).config), parse_key_values(overrides), where="command line")
    else:
        if not args.out:
            raise RlvrError("--out DIR is required (or --resume DIR)")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise RlvrError(f"--out {out}: a file of that name exists; a run folder needs another name")
        config = resolve_config(args.preset, args.config, overrides)

    from oneshot_rlvr.train import train

    train(config, out, resume=bool(args.resume), quiet=args.quiet)
    print(f"run folder: {out}")
    return 0


def _width() -> int:
    """The terminal's width, kept between 60 and 100 columns."""
    import shutil

    return max(60, min(100, shutil.get_terminal_size((100, 24)).columns))
