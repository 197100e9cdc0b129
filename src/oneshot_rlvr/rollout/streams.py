"""Random streams by row: what a sampled response draws depends on (seed, row index) alone.

A rollout's rows are scheduled differently by chunked and continuous decoding, and by every
`rollout_batch_rows`: a stream shared by the batch would hand row i a different draw each time. Each row
instead owns a generator seeded from (seed, row), and draws its `max_new_tokens` uniforms up front (one
per token; the sampler inverts the CDF with it), so its samples are the same however it is scheduled.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """SplitMix64's finaliser: nearby inputs (seed, seed + 1; row, row + 1) give unrelated outputs."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def row_seed(seed: int, row: int) -> int:
    """The 63-bit seed of row `row`'s stream in a rollout seeded `seed`."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ row) >> 1


def row_uniforms(seed: int, rows: Sequence[int], count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(len(rows), count) float64 uniforms in [0, 1): row k holds the first `count` draws of row `rows[k]`'s
    stream. Drawn on the CPU (the same numbers on every device), then moved to `device`."""
    out = torch.empty(len(rows), count, dtype=torch.float64)
    gen = torch.Generator()
    for k, row in enumerate(rows):
        gen.manual_seed(row_seed(seed, row))
        torch.rand(count, generator=gen, dtype=torch.float64, out=out[k])
    return out.to(device)


__all__ = ["row_seed", "row_uniforms"]
