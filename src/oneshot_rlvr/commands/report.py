"""`rlvr report RUN [--out FILE]`: a run folder -> one self-contained HTML page with its plots."""

from __future__ import annotations

import argparse

HELP = "turn a run folder into a self-contained HTML page with its plots (reward, accuracy, entropy, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder written by rlvr train (holds metrics.jsonl)")
    parser.add_argument("--out", metavar="FILE", help="page to write (default RUN/report/index.html)")


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.report import write_report

    print(write_report(args.run, args.out))
    return 0
