"""Greedy evaluation throughput: continuous batching against chunked decoding, in one process, alternating.

MATH500-shaped: every problem its own prompt, one greedy response each, up to `--tokens` tokens, through
`--rows` decode rows. On CPU the bundled tiny model answers the demo world's test problems (what `rlvr demo`
evaluates); `--model` names another (a Hugging Face id or folder, e.g. Qwen2.5-Math-1.5B on CUDA).

    python benchmarks/eval_throughput.py                       # 250 world problems, 96 tokens, 64 rows, CPU
    python benchmarks/eval_throughput.py --rows 256 --json     # all rows at once (no refills)

Prints, for each side, the median generation time, problems per second and new tokens per second over
`--rounds` rounds, and `speedup` (chunked time over continuous), from the same process and problems.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from oneshot_rlvr.data import render_prompt
    from oneshot_rlvr.models.load import load_model, load_tokenizer
    from oneshot_rlvr.rollout import SamplingParams
    from oneshot_rlvr.rollout.fast import FastRolloutEngine
    from oneshot_rlvr.world.problems import generate_problems

    device = torch.device(args.device)
    tok = load_tokenizer(args.model)
    model = load_model(args.model).to(device)
    prompts = [render_prompt(p.question, args.template, tok) for p in generate_problems("test", args.problems)]
    greedy = SamplingParams(temperature=0.0, max_new_tokens=args.tokens)
    engines = {"continuous": FastRolloutEngine(model, tok, max_batch_rows=args.rows),
               "chunked": FastRolloutEngine(model, tok, max_batch_rows=args.rows, continuous=False)}
    times: dict[str, list[float]] = {name: [] for name in engines}
    tokens: dict[str, float] = {}
    for engine in engines.values():  # (warm-up: lazy initialisation, allocator)
        engine.generate(prompts[: args.rows], 1, SamplingParams(temperature=0.0, max_new_tokens=4))
    for _ in range(args.rounds):
        for name, engine in engines.items():
            start = time.perf_counter()
            out = engine.generate(prompts, 1, greedy)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
            tokens[name] = float(out.response_mask.sum())
    summary: dict[str, Any] = {"device": args.device, "problems": args.problems, "tokens": args.tokens,
                               "rows": args.rows, "model": args.model}
    for name in engines:
        seconds = statistics.median(times[name])
        summary[f"{name}_s"] = seconds
        summary[f"{name}_problems_per_s"] = args.problems / seconds
        summary[f"{name}_new_tokens_per_s"] = tokens[name] / seconds
        summary[f"{name}_new_tokens"] = tokens[name]
    summary["speedup"] = summary["chunked_s"] / summary["continuous_s"]
    summary["speedup_per_round"] = [round(c / o, 3) for o, c in zip(times["continuous"], times["chunked"],
                                                                      strict=True)]
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
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    summary = measure(args)
    for key, value in summary.items():
        print(f"{key:>28}: {value:.4g}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
