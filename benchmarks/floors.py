"""Lower bounds on an RL step's time on a device: how far a trainer is from what the hardware allows.

Each phase of a 1-shot GRPO step has a floor that no implementation beats on the same device:
- sampling reads every weight and the keys and values so far at each decode step (bandwidth: `decode_floor_s`)
  and multiplies every row through every weight matrix (arithmetic);
- the reference pass is one forward over the same tokens, without the sampling's token-by-token reads;
- the update is a forward and a backward: three forwards' arithmetic (more with activation checkpointing).

Arithmetic counts only the matmuls and attention of a Llama-family model (Qwen2, Llama, Mistral), with the
shared prompt computed once and no position computed that the step does not need; it is timed at the rate a
large square matmul reaches on the device in the phase's dtype (`matmul_gflops`). Norms, activations, softmax,
sampling and the optimizer are left out, so every floor is below the truth.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def model_config(model_dir: str) -> dict[str, Any]:
    return dict(json.loads((Path(model_dir) / "config.json").read_text()))


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth_gbs(device: str, megabytes: int = 512) -> float:
    """Memory bandwidth a large on-device copy achieves: bytes read plus bytes written per second, in GB/s."""
    import torch

    repeats = 50 if device == "cuda" else 5  # (a GPU copies 1 GB in well under a millisecond)
    src = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch, off the clock
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    _sync(device)
    return 2 * src.numel() * repeats / (time.perf_counter() - start) / 1e9


def matmul_gflops(device: str, dtype: str, size: int | None = None) -> float:
    """Arithmetic rate (GFLOP/s) of a large square matmul in `dtype` ("fp32" or "bf16") on the device: the best a
    dense layer's matmuls reach there (the model's own, smaller ones run slower)."""
    import torch

    size = size or (8192 if device == "cuda" else 2048)
    repeats = 20 if device == "cuda" else 4
    kind = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(size, size, device=device).to(kind)
    b = torch.randn(size, size, device=device).to(kind)
    a @ b  # warm-up: library dispatch, oneDNN's primitive, cuBLAS's handle
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def decode_floor_s(weight_bytes: float, kv_bytes_per_token: float, rows: int, prompt_len: int, new_tokens: int,
                   bandwidth_gbs: float) -> float:
    """The least time `new_tokens` decode steps of `rows` rows can take when memory bandwidth is the limit:
    every step reads each weight once and the keys and values of every row's tokens so far (prompt and
    response; the newest token's are written, not read)."""
    kv_reads = kv_bytes_per_token * rows * sum(prompt_len + t for t in range(new_tokens))
    return (new_tokens * weight_bytes + kv_reads) / (bandwidth_gbs * 1e9)


def _shape(config: dict[str, Any]) -> tuple[int, int, int, int, int, int, int]:
    hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    return hidden, layers, vocab, heads, kv_heads, head_dim, config["intermediate_size"]


def model_decode_bytes(model_dir: str, element_bytes: int) -> tuple[float, float]:
    """(bytes of the weights one decode step reads, bytes of keys and values per token) of a Llama-family
    model in `element_bytes`-byte elements. The input embedding is only looked up, so it counts only when
    it is also the output layer (tied)."""
    config = model_config(model_dir)
    hidden, layers, vocab, heads, kv_heads, head_dim, inter = _shape(config)
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    bias = heads * head_dim + 2 * kv_heads * head_dim if config.get("model_type") == "qwen2" else 0
    per_layer = attn + bias + 3 * hidden * inter + 2 * hidden
    weights = layers * per_layer + hidden + vocab * hidden  # + final norm + output layer
    kv = layers * 2 * kv_heads * head_dim
    return float(weights * element_bytes), float(kv * element_bytes)


def forward_flops(config: dict[str, Any], rows: int, prompt_len: int, new_tokens: int) -> float:
    """Matmul and attention FLOPs of one forward that scores `new_tokens` response tokens of each of `rows` rows
    after one shared prompt of `prompt_len` tokens: the least arithmetic of sampling them, and of a reference
    pass over them.

    The body runs every position but the last response token's (nothing predicts from it), the shared prompt's
    once; a position p attends to p + 1 keys. The output layer runs on the positions that predict a response
    token: the prompt's last (once) and each row's first `new_tokens - 1` response positions.
    """
    hidden, layers, vocab, heads, kv_heads, head_dim, inter = _shape(config)
    per_token = 2 * layers * (2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 3 * hidden * inter)
    per_key = 4 * layers * heads * head_dim  # scores and weighted values, per query position and key
    own = max(new_tokens - 1, 0)  # each row's own positions: prompt_len .. prompt_len + new_tokens - 2
    keys = prompt_len * (prompt_len + 1) // 2 + rows * sum(p + 1 for p in range(prompt_len, prompt_len + own))
    body = per_token * (prompt_len + rows * own) + per_key * keys
    return float(body + 2 * hidden * vocab * (1 + rows * own))


def step_floors(forward: float, gflops_sampling: float, gflops_train: float, bandwidth_floor_s: float,
                reference: bool = True) -> dict[str, float]:
    """Seconds no implementation beats, per phase of a step whose forward over the batch costs `forward` FLOPs:
    sampling (its arithmetic or its reads, whichever takes longer), the reference pass (one forward; none
    without a KL term) and the update (forward and backward: three forwards), and their sum."""
    floors = {"generate": max(forward / (gflops_sampling * 1e9), bandwidth_floor_s),
              "logprobs": forward / (gflops_train * 1e9) if reference else 0.0,
              "update": 3 * forward / (gflops_train * 1e9)}
    return {**floors, "step": sum(floors.values())}
