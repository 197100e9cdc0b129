"""Data parallelism without a wrapper: each process rolls out and scores its share of the prompts,
gradients are averaged by one all-reduce per optimizer step.

DistributedDataParallel needs its own forward to sync gradients, and the chunked log-prob function
bypasses `model.forward` to avoid full-vocabulary logits, so gradients are reduced by hand here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        # torch.distributed.nn.functional binds `group.WORLD` into its functions' default arguments when it is
        # first imported, and transformers imports it while building a model. Imported after the group exists,
        # those defaults keep the group alive past `destroy_process_group`: gloo's threads then run into
        # interpreter shutdown, where they can abort the process ("terminate called without an active
        # exception") after a finished run. Imported first, the defaults hold None.
        import torch.distributed.nn.functional  # noqa: F401

        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_cat(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate equal-shaped tensors from every rank along dim 0, in rank order."""
    if not info.enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def all_sum(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average .grad over ranks in one flat buffer (one collective per step)."""
    if not info.enabled:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def check_in_sync(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Fail loudly if the ranks' weights have drifted apart (they must stay bit-identical)."""
    if not info.enabled:
        return
    checksum = torch.stack([p.detach().double().sum() for p in params]).sum().reshape(1)
    reference = checksum.clone()
    dist.broadcast(reference, src=0)
    differs = (checksum != reference).double()
    dist.all_reduce(differs)
    if differs.item() > 0:
        raise RuntimeError(f"data-parallel ranks hold different weights (rank {info.rank}); stopping")


def broadcast_parameters(model: Any, info: DistInfo) -> None:
    """Start every rank from rank 0's weights."""
    if not info.enabled:
        return
    for p in model.parameters():
        dist.broadcast(p.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
