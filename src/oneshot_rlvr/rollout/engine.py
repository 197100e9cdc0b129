"""`make_engine`: the one place that turns the settings into a rollout engine.

Llama-family models (Qwen2, Llama, Mistral) on CPU or CUDA sample through the fast path
(`oneshot_rlvr.rollout.fast.FastRolloutEngine`: fused forward, continuous batching, recorded CUDA steps);
every other model (peft wrappers, other architectures, other devices) through its own Hugging Face forward
(`oneshot_rlvr.rollout.hf.HFRolloutEngine`). The settings each choice reads are documented on them in
`oneshot_rlvr.config`: `rollout_batch_rows`, `continuous_batching`, `rollout_dtype`, `rollout_cuda_graphs`,
`stop`.
"""

from __future__ import annotations

from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.rollout.base import RolloutEngine
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.fast.lm import unsupported_reason
from oneshot_rlvr.rollout.hf import HFRolloutEngine


def rollout_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype of the weights that sample (None: the trained weights' own)."""
    if cfg.rollout_dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[cfg.rollout_dtype]


def make_engine(model: Any, tokenizer: Any, cfg: TrainConfig | None = None, *, batch_rows: int | None = None,
                stop: str | None = None) -> RolloutEngine:
    """The rollout engine that samples from `model` as the settings ask.

    `cfg` None: evaluation's engine, sampling in the model's own dtype with the default settings otherwise.
    `batch_rows` replaces `rollout_batch_rows` (evaluation's `--batch-rows`); `stop` replaces the `stop` setting.
    """
    dtype = rollout_dtype(cfg, next(model.parameters()).device) if cfg is not None else None
    cfg = cfg or TrainConfig()
    rows = batch_rows or cfg.rollout_batch_rows
    stop = stop or cfg.stop
    if fast_path_covers(model):
        return FastRolloutEngine(model, tokenizer, max_batch_rows=rows, dtype=dtype,
                                 continuous=cfg.continuous_batching,
                                 graphs=None if cfg.rollout_cuda_graphs else False,  # (None: on CUDA)
                                 stop=stop)
    return HFRolloutEngine(model, tokenizer, max_batch_rows=rows, dtype=dtype, stop=stop)


def fast_path_covers(model: Any) -> bool:
    """Whether `model` samples through the fast path: a Llama-family model on CPU or CUDA."""
    return unsupported_reason(model) is None and next(model.parameters()).device.type in ("cpu", "cuda")


__all__ = ["fast_path_covers", "make_engine", "rollout_dtype"]
