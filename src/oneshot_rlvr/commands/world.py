"""`rlvr world`: the bundled tiny math world (pretrain its model, export its problems, measure a model)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.precision import AUTOCAST_CHOICES

if TYPE_CHECKING:
    from oneshot_rlvr.world.corpus import CorpusMix

HELP = "the bundled tiny math world: pretrain its model, export its problem splits, measure a model"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="world_command", metavar="SUBCOMMAND", parser_class=type(parser))

    pre = sub.add_parser("pretrain", help="pretrain the world's tiny Qwen2 model from its corpus")
    pre.add_argument("--out", default="world-tiny",
                     help="output folder; an interrupted pretraining there resumes from its checkpoint.pt, a finished "
                          "one is kept (continue from it with --init)")
    pre.add_argument("--tokens", type=int, default=None, help="training tokens (default 7,500,000)")
    pre.add_argument("--seed", type=int, default=0, help="seed of the tokenizer, weights and corpus stream")
    pre.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    pre.add_argument("--autocast", choices=AUTOCAST_CHOICES, default="auto",
                     help="bf16 autocast: auto (where the device has native bf16), bf16 or none")
    pre.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    pre.add_argument("--batch-rows", type=int, default=None, help="rows of 512 tokens per step (default 8)")
    pre.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3)")
    pre.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default 100)")
    pre.add_argument("--init", default="", help="continue from this model folder instead of random weights")
    pre.add_argument("--mix", action="append", default=[], metavar="KEY=VALUE",
                     help="override a corpus-mix setting, e.g. careless=0.7 (repeatable)")

    exp = sub.add_parser("export", help="write one split of the world's problems as JSONL")
    exp.add_argument("--split", choices=("test", "val", "train"), required=True,
                     help="which problems: test (for eval), val (for validation) or train (for select/train)")
    exp.add_argument("--out", required=True, help="the JSONL file to write")
    exp.add_argument("--n", type=int, default=None, help="number of problems (default: 500 test/val, 1000 train)")
    exp.add_argument("--seed", type=int, default=0, help="seed of the world the problems come from (default 0)")

    mea = sub.add_parser("measure", help="greedy, forced-style and sampled accuracy of a model on a split")
    mea.add_argument("--model", default="builtin:tiny", help="model folder or builtin:tiny")
    mea.add_argument("--split", choices=("test", "val", "train"), default="val",
                     help="which problems to measure on (default val)")
    mea.add_argument("--n", type=int, default=500, help="number of problems (default 500)")
    mea.add_argument("--seed", type=int, default=0, help="seed of the world the problems come from (default 0)")
    mea.add_argument("--template", default="qwen25-math-cot", help="prompt template of the questions")
    mea.add_argument("--samples", type=int, default=1, help="T = 1 samples per problem for style frequencies")
    mea.add_argument("--out", default=None, help="also write the figures as JSON here")


DEFAULT_N = {"test": 500, "val": 500, "train": 1000}


def run(args: argparse.Namespace) -> int:
    if args.world_command == "pretrain":
        return _pretrain(args)
    if args.world_command == "export":
        return _export(args)
    if args.world_command == "measure":
        return _measure(args)
    raise RlvrError("choose a subcommand: rlvr world {pretrain, export, measure}")


def _pretrain(args: argparse.Namespace) -> int:
    from oneshot_rlvr.world.pretrain import PretrainConfig, pretrain

    out = Path(args.out)
    if (out / "pretrain.json").exists() and not (out / "checkpoint.pt").exists():
        raise RlvrError(f"--out {out} already holds a finished pretraining; continue from it with --init {out} "
                        "and another --out, or choose a new --out")
    config = PretrainConfig(seed=args.seed, device=args.device, autocast=args.autocast, threads=args.threads,
                            init_from=args.init, mix=_mix(args.mix))
    if args.tokens is not None:
        if args.tokens <= 0:
            raise RlvrError(f"--tokens must be > 0, got {args.tokens}")
        config.tokens = args.tokens
    for name in ("batch_rows", "lr", "warmup_steps"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    summary = pretrain(config, args.out)
    print(f"wrote {args.out}: {summary['parameters'] / 1e6:.2f}M parameters, {summary['tokens']} tokens "
          f"in {summary['wall_seconds']:.0f} s ({summary['tokens_per_second']} tokens/s)")
    return 0


def _mix(pairs: list[str]) -> CorpusMix:
    from oneshot_rlvr.world.corpus import CorpusMix

    known = {f.name for f in dataclasses.fields(CorpusMix)}
    values: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key.strip() not in known:
            raise RlvrError(f"--mix {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise RlvrError(f"--mix {pair!r}: {value!r} is not a number") from None
    return CorpusMix(**values)


def _export(args: argparse.Namespace) -> int:
    from oneshot_rlvr.world.problems import generate_problems

    n = DEFAULT_N[args.split] if args.n is None else args.n
    problems = generate_problems(args.split, n, seed=args.seed)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise RlvrError(f"--out {out}: folder {out.parent} does not exist")
    with open(out, "w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps(p.row(), ensure_ascii=False) + "\n")
    print(f"wrote {len(problems)} {args.split} problems to {out}")
    return 0


def _measure(args: argparse.Namespace) -> int:
    from oneshot_rlvr.models.load import load_model, load_tokenizer
    from oneshot_rlvr.world.measure import measure
    from oneshot_rlvr.world.problems import generate_problems

    problems = generate_problems(args.split, args.n, seed=args.seed)
    model = load_model(args.model)
    model.eval()
    result = measure(model, load_tokenizer(args.model), problems, template=args.template,
                     samples=args.samples, seed=args.seed)
    result.update(model=args.model, split=args.split)
    for key in ("greedy", "forced_careless", "forced_careful", "sampled_t1"):
        r = result[key]
        print(f"{key:16s} strict {r['strict']:.3f}  lenient {r['lenient']:.3f}  boxed {r['boxed']:.3f}  "
              f"styles {json.dumps({k: round(v, 3) for k, v in r['styles'].items()})}")
    for family, r in result["greedy"]["per_family"].items():
        print(f"  greedy {family:10s} strict {r['strict']:.3f}  lenient {r['lenient']:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0
