"""`rlvr export verl`: parquet data, a reward module and a launch script for multi-node runs on verl."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from oneshot_rlvr.errors import RlvrError

HELP = "write a verl run (parquet data, reward_fn.py, run_verl.sh) with this project's recipe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # A sub-parser per target keeps KEY=VALUE settings the only positional, so they may follow options.
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True, parser_class=type(parser))
    verl = targets.add_parser("verl", help="verl (Ray, FSDP, vLLM) for multi-node runs", description=HELP)
    verl.prog = f"{parser.prog} verl"
    verl.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="override any training setting")
    verl.add_argument("--train", required=True, help="training problems (JSONL, JSON or parquet); "
                      "fewer than a batch are repeated to fill it")
    verl.add_argument("--val", required=True, help="validation problems (e.g. MATH500)")
    verl.add_argument("--model", required=True, help="model path or hub id as the verl nodes see it")
    verl.add_argument("--out", required=True, help="folder to write into")
    verl.add_argument("--nodes", type=int, default=1, help="machines (default 1)")
    verl.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per machine (default 8)")
    verl.add_argument("--preset", default="pi1-qwen2.5-math-1.5b",
                      help="settings to start from (default: the paper's headline run)")
    verl.add_argument("--config", help="YAML file of settings")
    verl.add_argument("--name", default="oneshot_rlvr", help="experiment name in verl's logs and checkpoints")


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.config import resolve_config
    from oneshot_rlvr.data import expand_to_batch, load_problems
    from oneshot_rlvr.export.verl import VERL_VERSION, export_verl

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise RlvrError(f"--out {args.out}: a file of that name exists; the export needs a folder")
    flags = [f"train_file={args.train}", f"val_file={args.val}", f"model={args.model}"]
    cfg = resolve_config(args.preset, args.config, [*args.settings, *flags])
    cfg.validate(world_size=1)
    problems = load_problems(cfg.train_file, question_field=cfg.question_field or None,
                             answer_field=cfg.answer_field or None, skip_bad_rows=cfg.skip_bad_rows)
    train = expand_to_batch(problems, cfg.batch_size)
    val = load_problems(cfg.val_file)
    if cfg.val_limit:
        val = val[: cfg.val_limit]
    paths = export_verl(train, val, cfg, Path(args.out), nnodes=args.nodes,
                        gpus_per_node=args.gpus_per_node, name=args.name)
    print(f"wrote {len(train)} training rows, {len(val)} validation rows for verl {VERL_VERSION}:")
    for path in paths.values():
        print(f"  {path}")
    print(f"run it with: bash {shlex.quote(str(paths['script']))}")
    return 0
