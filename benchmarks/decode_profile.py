"""Where a decode step's time goes: the model step alone, with sampling, and the whole decode loop.

Same random-weight models as `step_vs_trl.py` (`--device cuda`: the Qwen2.5-1.5B shape in bf16; `cpu`: the
4-layer model). For each batch size it times, per token: the static step (`GraphDecoder`, replayed from CUDA
graphs on CUDA), the step plus `sample_next`, and `decode` itself with a look at stopped rows every token and
every 16 tokens (forced lengths: no row stops), after a first pass that records the steps (`warm_s`).
`--kernels` also prints the eager step's top kernels from the PyTorch profiler (a recorded graph shows as one
launch). `--compile` times the same rows again with the step's arithmetic compiled by `torch.compile` (Inductor
fuses the small elementwise kernels around the matmuls and attention; dynamic shapes, so one compilation serves
every batch and window, counted in that row's `warm_s`), and gives how far its logits are from the eager step's
over 8 greedy tokens (`compiled_max_logit_diff`): an experiment, not something the trainer does.

    python benchmarks/decode_profile.py --device cuda --batch 64 1 --tokens 256
    python benchmarks/decode_profile.py --device cuda --batch 64 --tokens 256 --compile
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.decode import decode, sample_next
from oneshot_rlvr.rollout.fast import graphs
from oneshot_rlvr.rollout.fast.graphs import GraphDecoder, cuda_graph_recorder
from oneshot_rlvr.rollout.fast.lm import FastLM
from step_vs_trl import PROMPT, build_model
from update_profile import print_row, timed


def per_token_ms(fn: Callable[[], object], tokens: int, device: str) -> float:
    return timed(fn, torch.device(device))[0] / tokens * 1e3


def profile_batch(decoder: GraphDecoder, tok: Any, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """Per-token milliseconds of the step, the step plus sampling, and `decode` at two look intervals."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.tokens)
    enc = tok([PROMPT] * batch, return_tensors="pt", add_special_tokens=False)
    ids, mask = enc.input_ids.to(args.device), enc.attention_mask.to(args.device)
    positions = (mask.cumsum(-1) - 1)[:, -1:]
    shared = (torch.zeros(1, dtype=torch.long, device=args.device),
              torch.zeros(batch, dtype=torch.long, device=args.device))

    def steps(sample: bool) -> None:
        step = decoder.start(ids, mask, args.tokens, shared)
        feed = ids[:, -1:]
        for t in range(args.tokens):
            logits = step(feed, positions + t, None)
            if sample:
                feed = sample_next(logits, sampling)[:, None]

    def loop(every: int) -> None:
        step = decoder.start(ids, mask, args.tokens, shared)
        decode(step, ids, mask, sampling, [-1], 0, prefilled=True, check_every=every)

    with torch.no_grad():
        start = time.perf_counter()
        steps(True)  # records every window once (and compiles the step, with --compile)
        warm_s = time.perf_counter() - start
        return {"batch": batch, "warm_s": warm_s,
                "step_ms": per_token_ms(lambda: steps(False), args.tokens, args.device),
                "step_sample_ms": per_token_ms(lambda: steps(True), args.tokens, args.device),
                "decode_look_every_1_ms": per_token_ms(lambda: loop(1), args.tokens, args.device),
                "decode_look_every_16_ms": per_token_ms(lambda: loop(16), args.tokens, args.device)}


def compiled_rows(model: Any, tok: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same rows with `decode_token` compiled (dynamic shapes: one compilation serves every batch and window;
    `warm_s` includes it), and how far the compiled step's logits are from the eager one's over a few greedy
    tokens (the fused kernels round differently).

    The compiled step runs on plain weights: dynamo cannot trace oneDNN's prepacked bf16 tensors (CPUs with
    native bf16), and Inductor does its own packing. A compilation that fails anyway ends in one line."""
    lm = FastLM.from_model(model, prepack=False)
    enc = tok([PROMPT] * args.batch[0], return_tensors="pt", add_special_tokens=False)
    ids, mask = enc.input_ids.to(args.device), enc.attention_mask.to(args.device)
    reference = _greedy_logits(GraphDecoder(lm), ids, mask, 8)  # (eager, before the step is swapped)
    eager = graphs.decode_token
    graphs.decode_token = torch.compile(eager, dynamic=True)  # (GraphDecoder.step looks it up at each recording)
    try:
        decoder = GraphDecoder(lm, cuda_graph_recorder() if args.device == "cuda" else None)
        rows = []
        for batch in args.batch:
            row = {"compiled": True, **profile_batch(decoder, tok, batch, args)}
            rows.append(row)
            print_row(row)
        diff = {"compiled_max_logit_diff": float((_greedy_logits(decoder, ids, mask, 8) - reference).abs().max())}
        print(f"compiled_max_logit_diff={diff['compiled_max_logit_diff']:.3g}", flush=True)
        return [*rows, diff]
    except torch._dynamo.exc.TorchDynamoException as exc:  # (BackendCompilerFailed, Unsupported, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"decode_profile: --compile failed on this machine: {first}") from None
    finally:
        graphs.decode_token = eager


def _greedy_logits(decoder: GraphDecoder, ids: torch.Tensor, mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """(tokens, B, V) float32 logits of `tokens` decode steps feeding back each row's most likely token."""
    with torch.no_grad():
        step = decoder.start(ids, mask, tokens, None)
        feed, positions, out = ids[:, -1:], (mask.cumsum(-1) - 1)[:, -1:], []
        for t in range(tokens):
            logits = step(feed, positions + t, None).float()
            out.append(logits.clone())
            feed = logits.argmax(-1, keepdim=True)
        return torch.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 1])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--kernels", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="also time the recorded step with its arithmetic compiled by torch.compile (Inductor)")
    args = p.parse_args()
    dtype = torch.bfloat16
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_model(args.device, Path(tmp) / "model"))
        model = load_model(model_dir).to(args.device, dtype).eval()
        tok = load_tokenizer(model_dir)
    lm = FastLM.from_model(model)
    decoder = GraphDecoder(lm, cuda_graph_recorder() if args.device == "cuda" else None)
    results = []
    for batch in args.batch:
        row = profile_batch(decoder, tok, batch, args)
        results.append(row)
        print_row(row)
    if args.compile:
        results += compiled_rows(model, tok, args)
    if args.kernels:
        eager = GraphDecoder(lm)
        enc = tok([PROMPT] * args.batch[0], return_tensors="pt", add_special_tokens=False)
        ids, mask = enc.input_ids.to(args.device), enc.attention_mask.to(args.device)
        step = eager.start(ids, mask, 16, None)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if args.device == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.no_grad(), torch.profiler.profile(activities=activities) as prof:
            for t in range(8):
                step(ids[:, -1:], (mask.cumsum(-1) - 1)[:, -1:] + t, None)
        sort = "cuda_time_total" if args.device == "cuda" else "cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=25))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
