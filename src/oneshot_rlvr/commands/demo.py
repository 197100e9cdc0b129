"""`rlvr demo`: the bundled tiny model learns from one example, on any CPU, in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oneshot_rlvr.demo import DemoOptions

CONTROL_REWARDS = ("math", "random", "format", "incorrect", "majority", "neg_entropy", "self_certainty")
HELP = "1-shot RLVR on the bundled tiny math world: train on one example, evaluate before/after"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="override any training setting")
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--example", default=None,
                        help="training example id(s) from the world's pool: train-NNNNN, several comma-separated "
                        "(k-shot), or all")
    parser.add_argument("--steps", type=int, default=None, help="RL steps (default 80, the tiny-cpu preset)")
    parser.add_argument("--entropy-only", action="store_true", help="the paper's ablation: no reward term")
    parser.add_argument("--reward", default="math", choices=CONTROL_REWARDS,
                        help="the training reward: math (default) or a control (docs/research-controls.md)")
    parser.add_argument("--loss", default="pg", choices=("pg", "em"),
                        help="pg (default) or em: one-shot entropy minimisation, no reward")
    parser.add_argument("--controls", action="store_true",
                        help="run the controls table (true reward, format, random, incorrect, majority, entropy "
                        "minimisation, entropy only) x --seeds seeds into --out; prints the table")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per row of --controls (default 2)")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's pipeline: a pool run, the variance ranking of its history, 1-shot runs on "
                        "pi1, pi2, the median, a zero-variance and a random example; one table into --out")
    parser.add_argument("--test-problems", type=int, default=250, help="size of the held-out test split")
    parser.add_argument("--pool-problems", type=int, default=200,
                        help="size of the world's training pool (default 200)")
    parser.add_argument("--eval-every", type=int, default=10, help="evaluate a checkpoint every K steps (default 10)")
    parser.add_argument("--quiet", action="store_true", help="plain log lines instead of a progress bar")


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.demo import DEFAULT_EXAMPLE, DemoOptions, format_summary, run_demo

    opts = DemoOptions(out=Path(args.out), seed=args.seed, example=args.example or DEFAULT_EXAMPLE,
                       entropy_only=args.entropy_only, reward=args.reward, loss=args.loss, steps=args.steps,
                       test_problems=args.test_problems, eval_every=args.eval_every, overrides=list(args.settings),
                       pool_problems=args.pool_problems, quiet=args.quiet)
    if args.paper:
        return _paper(args, opts)
    if args.controls:
        from oneshot_rlvr.demo_controls import run_controls

        print(run_controls(opts, seeds=args.seeds))
        return 0
    summary = run_demo(opts)
    print(format_summary(summary))
    print(f"\nsummary: {opts.out / 'summary.json'}   report: {opts.out / 'run' / 'report' / 'index.html'}")
    return 0


def _paper(args: argparse.Namespace, opts: DemoOptions) -> int:
    from oneshot_rlvr.demo_paper import run_paper
    from oneshot_rlvr.errors import RlvrError

    # The pipeline picks its own examples and trains with the true reward; a flag that changes either is a mistake.
    clash = [flag for flag, given in (("--example", args.example is not None), ("--controls", args.controls),
                                      ("--entropy-only", args.entropy_only), ("--reward", args.reward != "math"),
                                      ("--loss", args.loss != "pg")) if given]
    if clash:
        raise RlvrError(f"--paper chooses its examples and trains with the math reward; drop {clash[0]}")
    print(run_paper(opts))
    print(f"\nsummary: {opts.out / 'summary.json'}   report: {opts.out / 'index.html'}")
    return 0
