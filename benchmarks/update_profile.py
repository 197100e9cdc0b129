"""Where the rest of a step goes: the reference pass and the update, by micro-batch size.

Same random-weight models as `step_vs_trl.py` (`--device cuda`: the Qwen2.5-1.5B shape in bf16 with activation
checkpointing, as its GPU run; `cpu`: the 4-layer model in float32), under bf16 autocast where the device has
native bf16 (the trainer's autocast=auto; the reference model is then bf16 too). A synthetic batch: `--rows`
copies of the benchmark prompt, each followed by `--tokens` random response tokens. For each micro-batch size it
times, after one warm-up, the reference pass with the shared prompt run once and without
(`score_tokens(share_prefix=...)`) and `update_policy` (forward, backward, AdamW), with the peak memory of each
(GPU only); then, once, the output layer's share of both (`head_ref_s`, `head_update_s`: the chunked log-probs
and entropies of every response position, without the model's body).

    python benchmarks/update_profile.py --device cuda --micro 16 32 64
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from oneshot_rlvr.algo.logprobs import head_logprobs
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.models.load import LoadOptions, load_model, load_tokenizer
from oneshot_rlvr.models.precision import resolve_autocast
from oneshot_rlvr.train.dist import DistInfo
from oneshot_rlvr.train.update import Batch, autocast, score_tokens, update_policy
from step_vs_trl import PROMPT, build_model


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(seconds, peak GB allocated on the GPU during the call; 0 on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30
    return time.perf_counter() - start, 0.0


def print_row(row: dict[str, Any]) -> None:
    """One line of key=value pairs, floats to three decimals (as soon as the row is measured)."""
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)


def synthetic_batch(tok: Any, rows: int, tokens: int) -> Batch:
    prompt = torch.tensor(tok(PROMPT, add_special_tokens=False).input_ids)
    response = torch.randint(0, len(tok), (rows, tokens))
    ids = torch.cat([prompt.expand(rows, -1), response], dim=1)
    response_mask = torch.zeros_like(ids)
    response_mask[:, len(prompt):] = 1
    return Batch(ids, torch.ones_like(ids), response_mask, adv=torch.randn(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--micro", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--tokens", type=int, default=None, help="response tokens (default 128 on cpu, 512 on cuda)")
    args = p.parse_args()
    device = torch.device(args.device)
    tokens = args.tokens or (512 if args.device == "cuda" else 128)
    cuda = args.device == "cuda"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_model(args.device, Path(tmp) / "model"))
        tok = load_tokenizer(model_dir)
        options = LoadOptions(dtype="bfloat16" if cuda else "float32", gradient_checkpointing=cuda,
                              attn_implementation="sdpa" if cuda else "eager")
        model = load_model(model_dir, options, device).train()
    precision = resolve_autocast("auto", device)  # (as the trainer: the reference model in bf16 under autocast)
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    ref = ref.to(torch.bfloat16) if precision == "bf16" else ref
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, foreach=not cuda, fused=cuda or None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0)
    torch.manual_seed(0)
    batch = synthetic_batch(tok, args.rows, tokens)
    info = DistInfo()  # (one process)
    for micro in args.micro:
        cfg = resolve_config(None, None, [
            f"model={model_dir}", "problem=x", "answer=1", f"batch_size={args.rows}", f"mini_batch_size={args.rows}",
            "n=1", f"max_new_tokens={tokens}", f"micro_batch_size={micro}", "temperature=1.0", "lr=1e-6",
            "kl_coef=0.001", "entropy_coef=0.001", f"device={args.device}", f"autocast={precision}",
            f"dtype={options.dtype}", f"gradient_checkpointing={str(cuda).lower()}"])

        def reference(share: bool, cfg: Any = cfg) -> torch.Tensor:
            return score_tokens(ref, batch, cfg, device, share_prefix=share)

        batch.ref_logp = reference(True)  # (also the warm-up)
        row: dict[str, Any] = {"micro": micro}
        for share in (True, False):
            row[f"ref_share_{share}_s"], row[f"ref_share_{share}_gb"] = timed(lambda s=share: reference(s), device)
        update_policy(model, optimizer, scheduler, batch, cfg, info, device, 1)  # warm-up
        row["update_s"], row["update_gb"] = timed(
            lambda cfg=cfg: update_policy(model, optimizer, scheduler, batch, cfg, info, device, 2), device)
        results.append(row)
        print_row(row)
    head = {"head_positions": args.rows * tokens, **head_times(model, cfg, device, args.rows * tokens)}
    print_row(head)
    print(json.dumps([*results, head]))


def head_times(model: Any, cfg: Any, device: torch.device, positions: int) -> dict[str, float]:
    """Seconds of the output layer's share alone (`head_logprobs` on random hidden states, every response position
    of the batch): as the reference pass scores (no gradients, no entropies) and as the update does (log-probs and
    entropies, forward and backward), with the peak memory of each (GPU only)."""
    head = model.get_output_embeddings()
    dtype = next(model.parameters()).dtype
    hidden = torch.randn(positions, head.weight.shape[1], device=device, dtype=dtype)
    targets = torch.randint(0, head.weight.shape[0], (positions,), device=device)

    def reference() -> None:
        with torch.no_grad(), autocast(cfg, device):
            head_logprobs(head, hidden, targets, cfg.temperature, with_entropy=False)

    def update() -> None:
        h = hidden.detach().requires_grad_()
        with autocast(cfg, device):
            logps, entropies = head_logprobs(head, h, targets, cfg.temperature)
        (torch.cat(logps).sum() + 0.001 * torch.cat(entropies).sum()).backward()
        model.zero_grad(set_to_none=True)

    out: dict[str, float] = {}
    for name, fn in (("head_ref", reference), ("head_update", update)):
        fn()  # warm-up
        out[f"{name}_s"], out[f"{name}_gb"] = timed(fn, device)
    return out


if __name__ == "__main__":
    main()
