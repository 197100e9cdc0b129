"""`rlvr select`: rank a pool by per-example accuracy history; write the chosen example's training file.

Three uses:
  rlvr select --history acc_step_500.json [--method std|lim|random] [--top K] [--format tsv|json]
  rlvr select --history H --pool POOL --rank 1[,13] --copies 128 --out pi1.parquet
  rlvr select --pool POOL --model M --steps N --out DIR [KEY=VALUE ...]   (trains to make the history)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import RunFolder

HELP = "rank examples by their accuracy history (the paper's variance score) and write the training file"

log = logging.getLogger(__name__)

# Settings the third use takes from flags; giving them as KEY=VALUE too would be ambiguous.
_FLAG_SETTINGS = ("train_file", "model", "steps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="training settings for the history run (with --model)")
    parser.add_argument("--history", help="per-example accuracy history: id -> list of per-epoch accuracies "
                                          "(history.json, acc_step_500.json, or a run folder: its history.json), or a "
                                          "W&B table export (.table.json or .csv with index and history columns)")
    parser.add_argument("--method", choices=("std", "lim", "random"), default="std",
                        help="std: population std of the history (the paper); lim: LIMR alignment; random")
    parser.add_argument("--seed", type=int, help="seed for --method random (default 0)")
    parser.add_argument("--top", type=int, help="print only the best K")
    parser.add_argument("--format", choices=("tsv", "json"), default="tsv", help="ranking output format")
    parser.add_argument("--pool", help="problem file the history's ids refer to (e.g. DSR-sub parquet)")
    parser.add_argument("--rank", help="rank(s) to write, comma-separated: 1 = pi1; 1,13 = pi1 + pi13")
    parser.add_argument("--copies", type=int, default=128, help="rows in the training file (default 128)")
    parser.add_argument("--template", default="oneshot-train", help="prompt template of the written rows")
    parser.add_argument("--out", help="training file (.parquet or .jsonl), or the run folder with --model")
    parser.add_argument("--model", help="train on the whole pool with this model to produce the history")
    parser.add_argument("--steps", type=int, help="RL steps of the history run (with --model)")
    parser.add_argument("--preset", help="settings preset for the history run")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted history run in --out")


def _rank(history_path: str | Path, args: argparse.Namespace) -> list[tuple[str, float]]:
    """The ranking, with a warning when it ranks nothing: every example scored the same."""
    from oneshot_rlvr.select import load_history, rank

    ranking = rank(load_history(history_path), args.method, seed=args.seed or 0)
    if len(ranking) > 1 and args.method != "random" and len({score for _, score in ranking}) == 1:
        log.warning("all %d examples score %g (%s): the ranking is only their order in the history, not a choice; "
                    "train the history run for more steps or with more samples", len(ranking), ranking[0][1],
                    args.method)
    return ranking


def _print_ranking(ranking: list[tuple[str, float]], args: argparse.Namespace) -> None:
    from oneshot_rlvr.select import format_ranking

    if args.top is not None and args.top < 1:
        raise RlvrError(f"--top {args.top}: must be at least 1")
    sys.stdout.write(format_ranking(ranking[: args.top], args.format))


def _history_run(args: argparse.Namespace) -> Path:
    """Train on the whole pool and return the run's history.json."""
    from oneshot_rlvr.config import parse_key_values, resolve_config

    if not args.out or args.steps is None:
        raise RlvrError("--model needs --steps N and --out DIR")
    clash = [k for k in parse_key_values(args.settings) if k in _FLAG_SETTINGS]
    if clash:
        raise RlvrError(f"setting {clash[0]} comes from --pool/--model/--steps; do not give it as KEY=VALUE")
    flags = [f"train_file={args.pool}", f"model={args.model}", f"steps={args.steps}"]
    config = resolve_config(args.preset, None, [*flags, *args.settings])
    from oneshot_rlvr.train import train

    out = Path(args.out)
    train(config, out, resume=args.resume)
    history = RunFolder(out).history
    if not history.exists():
        raise RlvrError(f"{out}: the run wrote no {history.name}")
    return history


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.select import format_ranking, parse_ranks, pick_examples, write_training_file

    if args.seed is not None and args.method != "random":
        raise RlvrError(f"--seed is for --method random; --method {args.method} has no randomness")
    if args.model:
        if args.history:
            raise RlvrError("give --history (an existing history) or --model (make one), not both")
        if not args.pool:
            raise RlvrError("--model needs --pool: the problems to train on")
        history_path = _history_run(args)
        ranking = _rank(history_path, args)
        ranking_file = Path(args.out) / "ranking.tsv"
        ranking_file.write_text(format_ranking(ranking, "tsv"), encoding="utf-8")
        print(f"ranking of {len(ranking)} examples: {ranking_file}", file=sys.stderr)
        _print_ranking(ranking, args)
        return 0
    if args.settings:
        raise RlvrError(f"KEY=VALUE settings ({args.settings[0]}) are only for the history run (--model)")
    if not args.history:
        raise RlvrError("give --history FILE (or --pool and --model to produce one)")
    ranking = _rank(args.history, args)
    if args.rank is None and args.pool is None:
        _print_ranking(ranking, args)
        return 0
    if not (args.rank and args.pool and args.out):
        raise RlvrError("writing a training file needs --pool, --rank and --out together")
    if Path(args.out).exists():
        raise RlvrError(f"--out {args.out} already exists; remove it or choose another name")
    ids = [ranking[r - 1][0] for r in parse_ranks(args.rank, len(ranking))]
    out = write_training_file(pick_examples(args.pool, ids), args.copies, args.out, template=args.template)
    print(f"wrote {args.copies} rows of example(s) {', '.join(ids)} to {out}")
    return 0
