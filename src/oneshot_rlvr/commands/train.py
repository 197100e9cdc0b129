"""`rlvr train`: run 1-shot RLVR from a preset, a YAML file and KEY=VALUE settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from oneshot_rlvr.errors import RlvrError

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
    parser.add_argument("--help-config", action="store_true", help="list every setting with its default and meaning")


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.config import TrainConfig, field_docs, load_config, parse_key_values, resolve_config

    if args.help_config:
        defaults = TrainConfig()
        for name, doc in field_docs().items():
            print(f"{name} (default {getattr(defaults, name)!r}): {doc}")
        return 0
    flags = {"pool": args.pool, "index": args.index, "problem": args.problem, "answer": args.answer,
             "train_file": args.train_file}
    overrides = list(args.settings) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    if args.resume:
        out = Path(args.resume)
        if not (out / "config.yaml").exists():
            raise RlvrError(f"{out}: no config.yaml, so not a run folder to resume")
        from oneshot_rlvr.config import apply_overrides

        config = apply_overrides(load_config(out / "config.yaml"), parse_key_values(overrides), where="command line")
    else:
        if not args.out:
            raise RlvrError("--out DIR is required (or --resume DIR)")
        out = Path(args.out)
        config = resolve_config(args.preset, args.config, overrides)

    from oneshot_rlvr.train import train

    train(config, out, resume=bool(args.resume), quiet=args.quiet)
    print(f"run folder: {out}")
    return 0
