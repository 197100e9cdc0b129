"""Decoding from CUDA graphs: each decode step replayed from a recording, not launched kernel by kernel.

A 1.5B model's decode step is a few hundred small kernels; launched one by one from Python, the GPU
waits on the launches (about 20 ms a step, against a memory-bandwidth floor near 1.5 ms). Recording the
step once as a CUDA graph and replaying it removes that wait, but a recording has fixed shapes and
addresses. So the step runs on static buffers:

- a KV cache of fixed capacity per batch size, written at a position held in a device tensor;
- attention over a fixed window of the cache (a multiple of `window`, recorded once per window size),
  with an additive bias that masks the positions not written yet and the prompts' padding;
- finished rows stay in their slots (their outputs are ignored) until at most half the batch is left,
  then the live rows move to a batch half the size (its buffers are the first rows of the full batch's),
  with its own recordings. Rows that stop early stop costing compute, in steps of two (time much less: on
  a GPU a step costs about the same at 1 row as at 64, so the longest row sets the time).

Recordings and buffers are kept for the next rollout of the same shape (the weights are refreshed in place,
so they stay valid); a rollout of another shape replaces them. Off CUDA the same code runs eagerly
(`record=None`), which is how it is tested on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from oneshot_rlvr.rollout.fast.lm import FastLM, KVCache, prefill

Recorder = Callable[[Callable[[], Tensor]], Callable[[], Tensor]]
"""Turns a function of static buffers into one that replays it (a CUDA graph), or returns it as is."""


def cuda_graph_recorder(pool: Any = None) -> Recorder:
    """A Recorder that captures CUDA graphs, all in one memory pool (they never run concurrently)."""
    pool = pool if pool is not None else torch.cuda.graph_pool_handle()

    def record(fn: Callable[[], Tensor]) -> Callable[[], Tensor]:
        # One run outside the recording first: libraries initialise lazily (cuBLAS handles, workspaces) and
        # that cannot be recorded. It computes the very step about to be replayed, so its writes are harmless.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            out = fn()

        def replay() -> Tensor:
            graph.replay()
            return out

        return replay

    return record


def decode_token(lm: FastLM, feed: Tensor, positions: Tensor, write_at: Tensor, cache: KVCache, bias: Tensor,
                 window: int) -> Tensor:
    """Logits (B, V) after one new token per row, with nothing that depends on host values but `window`.

    `feed` and `positions` are (B, 1); the new keys and values are written at cache position `write_at` (a
    (1,) tensor); attention reads the first `window` cache positions, `bias` (B, 1, 1, >= window) adding
    0 where a key is real and written, a large negative value elsewhere.
    """
    batch = feed.shape[0]
    group = lm.heads // lm.kv_heads
    with torch.autocast(feed.device.type, enabled=False):  # (the weights are in the sampling dtype already)
        x = F.embedding(feed, lm.embed)
        cos, sin = lm.rotary(positions, x.dtype)
        for layer, keys, values in zip(lm.layers, cache.keys, cache.values, strict=True):
            q, k, v = lm.attention_inputs(x, layer, cos, sin)
            keys.index_copy_(2, write_at, k)
            values.index_copy_(2, write_at, v)
            # One query per row: the query heads sharing a key head become that head's query rows, so the
            # kernel reads each cached key once without expanding the cache (grouped-query attention).
            q = q.reshape(batch, lm.kv_heads, group, lm.head_dim)
            out = F.scaled_dot_product_attention(q, keys[:, :, :window], values[:, :, :window],
                                                 attn_mask=bias[..., :window])
            x = lm.block_output(x, out.reshape(batch, lm.heads, 1, lm.head_dim), layer)
        return lm.logits(x)


@dataclass
class _Level:
    """The static buffers of one batch size, and its recorded steps by attention window."""

    feed: Tensor
    positions: Tensor
    write_at: Tensor
    bias: Tensor
    cache: KVCache
    steps: dict[int, Callable[[], Tensor]] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.feed.shape[0]


class GraphDecoder:
    """Recorded decode steps of one `FastLM`, kept across rollouts; `start` begins one."""

    def __init__(self, lm: FastLM, record: Recorder | None = None, window: int = 128):
        """`record`: how steps are recorded (`cuda_graph_recorder()` on CUDA); None runs them eagerly.
        `window`: the attention window's granularity (one recording per multiple of it)."""
        self.lm, self.record, self.window = lm, record, window
        self._levels: dict[tuple[int, int], _Level] = {}

    def level(self, batch: int, capacity: int, within: _Level | None = None) -> _Level:
        """The buffers (and recordings) of this batch size and capacity; a new level's cache and bias are the
        first rows of `within`'s, when given and large enough: the halved batches a rollout moves to then
        take no memory of their own (moving the live rows gathers them first, so the overlap is harmless)."""
        key = (batch, capacity)
        if key not in self._levels:
            lm, device = self.lm, self.lm.embed.device
            if within is not None and within.batch >= batch and within.bias.shape[-1] == capacity:
                cache = KVCache([k[:batch] for k in within.cache.keys], [v[:batch] for v in within.cache.values])
                bias = within.bias[:batch]
            else:
                cache = lm.new_cache(batch, capacity)
                for buf in (*cache.keys, *cache.values):
                    buf.zero_()  # (slots no row uses yet are computed too: finite values keep them quiet)
                bias = torch.zeros(batch, 1, 1, capacity, dtype=lm.dtype, device=device)
            self._levels[key] = _Level(
                feed=torch.zeros(batch, 1, dtype=torch.long, device=device),
                positions=torch.zeros(batch, 1, dtype=torch.long, device=device),
                write_at=torch.zeros(1, dtype=torch.long, device=device), bias=bias, cache=cache)
        return self._levels[key]

    def step(self, level: _Level, window: int) -> Tensor:
        """Run (recording it the first time) the level's decode step with this attention window."""
        if window not in level.steps:
            def fn() -> Tensor:
                return decode_token(self.lm, level.feed, level.positions, level.write_at, level.cache, level.bias,
                                    window)
            level.steps[window] = self.record(fn) if self.record is not None else fn
        return level.steps[window]()

    def start(self, ids: Tensor, mask: Tensor, max_new_tokens: int,
              shared: tuple[Tensor, Tensor] | None) -> GraphStep:
        """A decode Step for left-padded prompts `ids`, its cache holding all but their last tokens (prefilled
        once per distinct prompt when `shared` is (first row of each prompt, each row's prompt))."""
        batch, width = ids.shape
        capacity = -(-(width + max_new_tokens) // self.window) * self.window
        if (batch, capacity) not in self._levels:
            # Another shape (validation's, say): free the old buffers and recordings rather than keep a KV cache
            # per shape ever seen (gigabytes each at the paper's 3,072 tokens); switching back records again.
            self._levels.clear()
        level = self.level(batch, capacity)
        floor = torch.finfo(self.lm.dtype).min
        level.bias.fill_(floor)
        if width > 1:
            unique, slots = shared if shared is not None else (torch.arange(batch, device=ids.device),) * 2
            prompts = prefill(self.lm, ids, mask, unique, width - 1)
            for src, dst in zip((*prompts.keys, *prompts.values), (*level.cache.keys, *level.cache.values),
                                strict=True):
                dst[:, :, : width - 1] = src.index_select(0, slots)
            level.bias[:, 0, 0, : width - 1].masked_fill_(mask[:, :-1].bool(), 0.0)
        return GraphStep(self, level, length=width - 1)


class GraphStep:
    """A decode-loop Step (`oneshot_rlvr.rollout.decode.Step`) replaying a `GraphDecoder`'s recordings.

    Every new token is a real one, so `attn` is not needed: the bias set up by `GraphDecoder.start` masks
    the prompts' padding and each step unmasks the position it writes.
    """

    def __init__(self, decoder: GraphDecoder, level: _Level, length: int):
        self.decoder, self.level, self.length = decoder, level, length
        self.slots = torch.arange(level.batch, device=level.feed.device)  # the slot of each live row
        self.capacity = level.bias.shape[-1]

    def __call__(self, feed: Tensor, positions: Tensor, attn: Tensor | None) -> Tensor:
        level, t = self.level, self.length
        if t >= self.capacity:
            raise ValueError(f"decode step {t} is past the cache's {self.capacity} positions")
        full = len(self.slots) == level.batch  # (then the slots are 0..B-1 in order)
        if full:
            level.feed.copy_(feed)
            level.positions.copy_(positions)
        else:
            level.feed.index_copy_(0, self.slots, feed)
            level.positions.index_copy_(0, self.slots, positions)
        level.write_at.fill_(t)
        level.bias[:, 0, 0, t] = 0.0
        window = min(self.capacity, (t // self.decoder.window + 1) * self.decoder.window)
        logits = self.decoder.step(level, window)
        self.length = t + 1
        return logits if full else logits.index_select(0, self.slots)

    def select(self, keep: Tensor) -> None:
        """Keep only these rows; once at most half the batch is live, move them to a batch half the size."""
        self.slots = self.slots[keep]
        live, size = len(self.slots), self.level.batch
        while size > 1 and live <= size // 2:
            size //= 2
        if size == self.level.batch:
            return
        old = self.level
        new = self.decoder.level(size, self.capacity, within=old)
        t = self.length
        for src, dst in zip((*old.cache.keys, *old.cache.values), (*new.cache.keys, *new.cache.values),
                            strict=True):
            dst[:live, :, :t] = src[:, :, :t].index_select(0, self.slots)
        new.bias[:live] = old.bias.index_select(0, self.slots)
        new.bias[live:] = new.bias[:1]  # (unused slots: any finite attention will do)
        self.level, self.slots = new, torch.arange(live, device=self.slots.device)
