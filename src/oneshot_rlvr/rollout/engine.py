"""`make_engine`: the one place that turns the settings into a rollout engine.

What it picks (each documented on its setting in `oneshot_rlvr.config`): the dtype that samples
(`rollout_dtype`), the loop (continuous batching on the CPU fast path, `continuous_batching`; chunks of
`rollout_batch_rows` elsewhere), recorded CUDA steps (`rollout_cuda_graphs`) and sampling processes
(`rollout_processes`). The engine itself then takes the fast path (`oneshot_rlvr.rollout.fastpath`) for the
models it covers and the Hugging Face forward for the rest.
"""

from __future__ import annotations

from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.rollout.hf import HFRolloutEngine


def rollout_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype of the weights that sample (None: the trained weights' own)."""
    if cfg.rollout_dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[cfg.rollout_dtype]


def make_engine(model: Any, tokenizer: Any, cfg: TrainConfig, device: torch.device | None = None, *,
                batch_rows: int | None = None) -> HFRolloutEngine:
    """The rollout engine the settings ask for, sampling from `model` (on `device`, default the model's).
    `batch_rows` replaces `rollout_batch_rows` (evaluation's own batch)."""
    device = device or next(model.parameters()).device
    return HFRolloutEngine(model, tokenizer, max_batch_rows=batch_rows or cfg.rollout_batch_rows,
                           dtype=rollout_dtype(cfg, device), processes=cfg.rollout_processes,
                           graphs=None if cfg.rollout_cuda_graphs else False,  # (None: on CUDA)
                           continuous=cfg.continuous_batching, stop=cfg.stop)


__all__ = ["make_engine", "rollout_dtype"]
