"""Greedy evaluation throughput: continuous batching against chunked decoding, alternating, each side in a fresh
process (so each peak-memory figure is its own).

MATH500-shaped: every problem its own prompt, one greedy response each, up to `--tokens` tokens, through
`--rows` decode rows, in calls of 4 x rows problems as `rlvr eval` makes them. On CPU the bundled tiny model
answers the demo world's test problems (what `rlvr demo` evaluates); `--model` names another (a Hugging Face id
or folder, e.g. Qwen2.5-Math-1.5B on CUDA).

    python benchmarks/eval_throughput.py                       # 250 world problems, 96 tokens, 64 rows, CPU
    python benchmarks/eval_throughput.py --rows 256 --json     # all rows at once (no refills)

Prints, for each side, the median generation time, problems per second, new tokens per second and peak memory
over `--rounds` rounds, and `speedup` (chunked time over continuous) with each round's own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

SIDES = ("continuous", "chunked")


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One side's timed generation (after a short warm-up), in this process."""
    import resource

    import torch

    from oneshot_rlvr.data import render_prompt
    from oneshot_rlvr.eval.run import CHUNK_BATCHES
    from oneshot_rlvr.models.load import load_model, load_tokenizer
    from oneshot_rlvr.rollout import SamplingParams
    from oneshot_rlvr.rollout.fast import FastRolloutEngine
    from oneshot_rlvr.world.problems import generate_problems

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tok = load_tokenizer(args.model)
    model = load_model(args.model).to(device)
    prompts = [render_prompt(p.question, args.template, tok) for p in generate_problems("test", args.problems)]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=args.tokens)
    engine = FastRolloutEngine(model, tok, max_batch_rows=args.rows, continuous=args.worker == "continuous")
    engine.generate(prompts[: args.rows], 1, SamplingParams(temperature=0.0, max_new_tokens=4))  # (lazy set-up)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    per_call = CHUNK_BATCHES * args.rows
    start = time.perf_counter()
    parts = [engine.generate(prompts[i : i + per_call], 1, greedy) for i in range(0, len(prompts), per_call)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"s": seconds, "new_tokens": float(sum(p.response_mask.sum() for p in parts)), "peak_gb": peak / 2**30,
            "texts": [t for p in parts for t in p.texts]}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for side in SIDES:
            cmd = [sys.executable, __file__, "--worker", side, "--device", args.device, "--model", args.model,
                   "--template", args.template, "--problems", str(args.problems), "--tokens", str(args.tokens),
                   "--rows", str(args.rows), "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"the {side} side failed:\n{done.stderr[-3000:]}")
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary: dict[str, Any] = {"device": args.device, "problems": args.problems, "tokens": args.tokens,
                               "rows": args.rows, "model": args.model}
    for side in SIDES:
        seconds = statistics.median(r["s"] for r in runs[side])
        summary[f"{side}_s"] = seconds
        summary[f"{side}_problems_per_s"] = args.problems / seconds
        summary[f"{side}_new_tokens_per_s"] = runs[side][0]["new_tokens"] / seconds
        summary[f"{side}_new_tokens"] = runs[side][0]["new_tokens"]
        summary[f"{side}_peak_gb"] = max(r["peak_gb"] for r in runs[side])
    summary["same_answers"] = runs["continuous"][0]["texts"] == runs["chunked"][0]["texts"]
    summary["speedup"] = summary["chunked_s"] / summary["continuous_s"]
    summary["speedup_per_round"] = [round(c["s"] / o["s"], 3)
                                    for o, c in zip(runs["continuous"], runs["chunked"], strict=True)]
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model", default="builtin:tiny")
    p.add_argument("--template", default="qwen25-math-cot")
    p.add_argument("--problems", type=int, default=250)
    p.add_argument("--tokens", type=int, default=96, help="longest response (the tiny-cpu preset's)")
    p.add_argument("--rows", type=int, default=64, help="decode rows (rollout_batch_rows / eval --batch-rows)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads per side (0 = torch's default)")
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    summary = measure(args)
    for key, value in summary.items():
        print(f"{key:>28}: {value:.4g}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
