"""Continuous batching: a fixed number of slots, and a finished row's slot takes the next waiting row at once.

Chunked decoding runs `rollout_batch_rows` rows until the longest of them ends, then the next chunk: with
long-tailed response lengths most of its steps run a nearly empty batch, and every chunk pays for its own
longest row. Here each slot has its own position in one static KV cache; when a row stops, its slot is
refilled with the next pending row before the next step. Its prompt's keys and values are copied in from a
store that prefilled each distinct prompt once (in 1-shot every row has the same prompt: one prefill for the
whole rollout). When no row is waiting, finished slots leave the batch (the live rows move to the front).

On a float32 CPU a row's arithmetic does not depend on its neighbours: its attention reads the cache with its
own mask, and the batch is never computed with fewer than `MIN_ROWS` rows (float32 CPU matmul kernels switch
algorithm, and rounding, below about 10-16 rows). With the row's own random stream
(`oneshot_rlvr.rollout.streams`) a float32 CPU rollout is then the same bit for bit whatever the slot count.
In bf16, which promises no such thing, the tail shrinks to the rows still live.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from oneshot_rlvr.rollout.base import SamplingParams
from oneshot_rlvr.rollout.decode import RowProcessor, check_sampled, sample_next
from oneshot_rlvr.rollout.fast.graphs import Recorder
from oneshot_rlvr.rollout.fast.lm import FastLM, KVCache

MIN_ROWS = 16
"""The fewest rows a decode step computes (idle slots fill the rest): see the module docstring."""

MIN_SHARED = 8
"""The fewest tokens all distinct prompts must share for their beginning to be prefilled once (`PromptStore`)."""

WINDOW = 32
"""Attention reads the cache up to the furthest slot's position, rounded up to a multiple of this."""

PREFILL_GROUP = 16
"""Distinct prompts prefilled together, in the order they first appear (never by slot: see the docstring)."""


def slot_step(lm: FastLM, feed: Tensor, write_at: Tensor, cache: KVCache, bias: Tensor, window: int) -> Tensor:
    """Logits (B, V) after one token per slot: `feed` (B, 1) at position `write_at` (B,), the slot's own
    cache index (prompts are stored unpadded, so position and index agree). Attention reads the first `window`
    cache positions (past every slot's `write_at`); `bias` (B, 1, 1, capacity) is 0 on the keys a slot may
    read (its prompt and tokens so far, this one included) and a large negative value elsewhere."""
    batch = feed.shape[0]
    rows = torch.arange(batch, device=feed.device)
    group = lm.heads // lm.kv_heads
    # A mask of the attention's full shape: PyTorch's CPU kernel takes a slow path for a broadcast one (measured
    # 6x slower on the tiny model's shapes), so the one expansion per step pays for itself in every layer.
    mask = bias[..., :window].expand(batch, lm.kv_heads, group, window).contiguous()
    with torch.autocast(feed.device.type, enabled=False):  # (the weights are in the sampling dtype already)
        x = F.embedding(feed, lm.embed)
        cos, sin = lm.rotary(write_at[:, None], x.dtype)
        for layer, keys, values in zip(lm.layers, cache.keys, cache.values, strict=True):
            q, k, v = lm.attention_inputs(x, layer, cos, sin)
            keys[rows, :, write_at] = k[:, :, 0]
            values[rows, :, write_at] = v[:, :, 0]
            # The query heads sharing a key head become that head's query rows: each cached key is read once.
            q = q.reshape(batch, lm.kv_heads, group, lm.head_dim)
            out = F.scaled_dot_product_attention(q, keys[:, :, :window], values[:, :, :window], attn_mask=mask)
            x = lm.block_output(x, out.reshape(batch, lm.heads, 1, lm.head_dim), layer)
        return lm.logits(x)


class PromptStore:
    """Keys and values of every distinct prompt but its last token, prefilled in fixed groups on first use and
    dropped once no waiting row needs them.

    The tokens all distinct prompts begin with (a system prompt, a chat header, a few-shot preamble) are
    prefilled once and copied: each group then runs only the rest of its prompts (prefix caching). Prompts
    are stored unpadded from position 0, so that shared beginning's keys and values are the same in every
    prompt."""

    def __init__(self, lm: FastLM, ids: Tensor, mask: Tensor, prompt_of: list[int]):
        self.lm, self.ids, self.mask = lm, ids, mask
        first: dict[int, int] = {}
        for row, p in enumerate(prompt_of):
            first.setdefault(p, row)
        self.first_row = [first[p] for p in range(len(first))]
        self.waiting = [0] * (-(-len(first) // PREFILL_GROUP))
        for p in prompt_of:
            self.waiting[p // PREFILL_GROUP] += 1
        self.lengths = mask.sum(1).tolist()
        self._groups: dict[int, tuple[KVCache, int]] = {}
        self.shared = self._shared_length()
        self._prefix = self._prefill_prefix() if self.shared else None

    def take(self, p: int) -> tuple[list[Tensor], list[Tensor]]:
        """Per layer, prompt p's (kv_heads, length - 1, head_dim) keys and values, for one more row of it."""
        g = p // PREFILL_GROUP
        if g not in self._groups:
            self._groups[g] = self._prefill(g)
        cache, width = self._groups[g]
        self.waiting[g] -= 1
        if not self.waiting[g]:
            del self._groups[g]
        k, c = p - g * PREFILL_GROUP, self.shared
        own = self.lengths[self.first_row[p]] - 1 - c  # (its tokens after the shared ones, last one excluded)

        def rows(t: Tensor) -> Tensor:
            return torch.cat([t[k, :, :c], t[k, :, width - own : width]], dim=1) if c else t[k, :, width - own :]
        return [rows(t) for t in cache.keys], [rows(t) for t in cache.values]

    def _shared_length(self) -> int:
        """How many tokens every distinct prompt starts with (0 with one prompt, or fewer than MIN_SHARED)."""
        if len(self.first_row) < 2:
            return 0
        width = self.ids.shape[1]
        starts = [self.ids[r, width - self.lengths[r] :] for r in self.first_row]
        # Every prompt keeps at least one token of its own before its last (its group's prefill is never empty).
        most = min(len(t) for t in starts) - 2
        if most < MIN_SHARED:
            return 0
        heads = torch.stack([t[:most] for t in starts])
        differs = (heads != heads[:1]).any(0).nonzero()
        shared = int(differs[0]) if len(differs) else most
        return shared if shared >= MIN_SHARED else 0

    def _prefill_prefix(self) -> KVCache:
        r = self.first_row[0]
        width = self.ids.shape[1]
        head = self.ids[r : r + 1, width - self.lengths[r] :][:, : self.shared]
        cache = self.lm.new_cache(1, self.shared)
        self.lm.forward(head, torch.arange(self.shared, device=head.device)[None], cache)
        return cache

    def _prefill(self, g: int) -> tuple[KVCache, int]:
        """The group's cache (shared beginning, then each prompt's own tokens left-padded) and its width."""
        rows = self.first_row[g * PREFILL_GROUP : (g + 1) * PREFILL_GROUP]
        c = self.shared
        longest = max(self.lengths[r] for r in rows) - c  # (own tokens, the last included)
        ids = self.ids[rows, -longest:-1]
        # Each prompt's own tokens, right-aligned (left of them: padding, or its shared beginning when shorter).
        own = torch.tensor([self.lengths[r] - 1 - c for r in rows], device=ids.device)
        mask = (torch.arange(longest - 1, device=ids.device)[None] >= longest - 1 - own[:, None]).long()
        cache = self.lm.new_cache(len(rows), c + longest - 1)
        if longest < 2:
            return cache, c
        if self._prefix is not None:
            for dst, src in zip((*cache.keys, *cache.values), (*self._prefix.keys, *self._prefix.values),
                                strict=True):
                dst[:, :, :c] = src
            cache.length = c
        positions = c + (mask.cumsum(-1) - 1).clamp(min=0)
        key_mask = None if bool(mask.all()) else torch.cat([mask.new_ones(len(rows), c), mask], dim=1)
        self.lm.forward(ids, positions, cache, key_mask)
        return cache, c + longest - 1


class SlotBatch:
    """The slots' static state: cache, masks, positions, the token each feeds next, its response so far."""

    def __init__(self, lm: FastLM, slots: int, capacity: int, max_new: int, pad_id: int, device: torch.device,
                 stochastic: bool):
        self.cache = lm.new_cache(slots, capacity)
        for buf in (*self.cache.keys, *self.cache.values):
            buf.zero_()  # (idle slots are computed too: finite values keep them quiet)
        self.floor = torch.finfo(lm.dtype).min
        self.pad_id = pad_id
        self.bias = torch.empty((slots, 1, 1, capacity), dtype=lm.dtype, device=device)
        self.feed = torch.empty((slots, 1), dtype=torch.long, device=device)
        self.write_at = torch.empty(slots, dtype=torch.long, device=device)
        self.done = torch.empty(slots, dtype=torch.long, device=device)  # tokens generated by each slot's row
        self.active = torch.empty(slots, dtype=torch.long, device=device)  # 1 where a row decodes: it advances
        self.out = torch.full((slots, max_new), pad_id, dtype=torch.long, device=device)
        self.uniforms = torch.zeros(slots, max_new, dtype=torch.float64, device=device) if stochastic else None
        self.row: list[int] = []  # the row each slot decodes (-1: idle)
        self.size = slots  # slots computed by each step (the first `size`)
        self.reset(slots)
        self.halving = False  # sizes only halve (recorded steps: one recording per size)
        self.least = MIN_ROWS  # the fewest rows a step computes
        self._steps: dict[tuple[int, int], Callable[[], Tensor]] = {}

    def reset(self, slots: int) -> None:
        """Empty every slot for another rollout of the same shape, `slots` of them computed (the recordings stay:
        the buffers keep their addresses; what the cache holds is masked until a row writes it)."""
        self.bias.fill_(self.floor)
        self.bias[:, ..., 0] = 0.0  # (slots that never get a row read one key: no all-masked softmax)
        self.feed.fill_(self.pad_id)
        self.write_at.zero_()
        self.done.zero_()
        self.active.zero_()
        self.row = [-1] * self.feed.shape[0]
        self.size = slots

    def load(self, slot: int, row: int, keys: list[Tensor], values: list[Tensor], last: Tensor,
             uniforms: Tensor | None) -> None:
        """Start `row` in `slot`: its prompt's cache copied in, its last prompt token to feed next."""
        length = keys[0].shape[1]
        for dst, src in zip((*self.cache.keys, *self.cache.values), (*keys, *values), strict=True):
            dst[slot, :, :length] = src
        self.bias[slot].fill_(self.floor)
        self.bias[slot, ..., :length] = 0.0
        self.feed[slot, 0] = last
        self.write_at[slot] = length
        self.done[slot] = 0
        self.active[slot] = 1
        self.out[slot] = self.pad_id
        if self.uniforms is not None and uniforms is not None:
            self.uniforms[slot] = uniforms
        self.row[slot] = row

    def compact(self, keep: list[int]) -> None:
        """Move the slots `keep` to the front, in order, and compute only max(len(keep), self.least) from now."""
        index = torch.tensor(keep, device=self.feed.device)
        live = len(keep)
        for buf in (*self.cache.keys, *self.cache.values, self.bias, self.feed, self.write_at, self.done, self.active,
                    self.out, *((self.uniforms,) if self.uniforms is not None else ())):
            buf[:live] = buf.index_select(0, index)
        rows = [self.row[s] for s in keep]
        size = max(live, self.least)
        if self.halving:
            size = self.size
            while size // 2 >= max(live, self.least):
                size //= 2
        self.size = min(self.size, size)
        self.row = rows + [-1] * (len(self.row) - live)
        self.active[live:] = 0
        self.write_at[live:] = 0  # (idle slots keep writing where they stand: never past the cache's end)
        self.done[live:] = 0
        self.bias[live : self.size] = self.floor
        self.bias[live : self.size, ..., 0] = 0.0  # (idle rows read one key: no all-masked softmax)

    def view(self) -> tuple[Tensor, Tensor, KVCache, Tensor]:
        """feed, write_at, cache and bias of the slots a step computes."""
        n = self.size
        cache = KVCache([k[:n] for k in self.cache.keys], [v[:n] for v in self.cache.values])
        return self.feed[:n], self.write_at[:n], cache, self.bias[:n]

    def step(self, lm: FastLM, view: tuple[Tensor, Tensor, KVCache, Tensor], window: int,
             record: Recorder | None) -> Tensor:
        """Logits (size, V) of the slots' next tokens from `view` (this batch's `view()`); with `record`, replayed
        from a recording of this size and window (every input lives in the static buffers, so refills and moves
        leave the recordings valid)."""
        if record is None:
            return slot_step(lm, *view, window)
        key = (self.size, window)
        if key not in self._steps:
            feed, write_at, cache, bias = view
            self._steps[key] = record(lambda: slot_step(lm, feed, write_at, cache, bias, window))
        return self._steps[key]()


@torch.no_grad()
def decode_continuous(lm: FastLM, ids: Tensor, mask: Tensor, prompt_of: list[int], sampling: SamplingParams,
                      stop_ids: list[int], pad_id: int, *, slots: int,
                      uniforms: Callable[[list[int]], Tensor] | None = None,
                      row_processors: list[RowProcessor] | None = None, record: Recorder | None = None,
                      check_every: int = 1, window: int = WINDOW, keep: dict[tuple[int, ...], SlotBatch] | None = None
                      ) -> Tensor:
    """(N, R) response tokens of the N left-padded prompt rows `ids`, `slots` rows decoding at a time.

    `prompt_of[i]`: the distinct prompt of row i (numbered in order of first appearance); its cache is
    prefilled once. `uniforms(rows)`: the (len(rows), R) draws of those rows (`streams.row_uniforms`); None
    draws from torch's generator in scheduling order. Each row ends with its stop token or at R tokens.

    `record` replays each step from a recording (`oneshot_rlvr.rollout.fast.graphs.cuda_graph_recorder` on
    CUDA): the batch then only halves when it shrinks, and attention windows are multiples of `window`, so
    a rollout records a few dozen steps. `check_every`: tokens between looks at which rows stopped (each look
    waits for the device; a row that stops in between idles in its slot until the look refills it). `keep`
    holds the slots' buffers (and their recordings) for the next rollout of the same shape.
    """
    n_rows, width = ids.shape
    device, max_new = ids.device, sampling.max_new_tokens
    store = PromptStore(lm, ids, mask, prompt_of)
    count = max(1, min(slots, n_rows))
    stochastic = not sampling.greedy and uniforms is not None
    # The floor keeps a float32 CPU rollout's rounding independent of the batch (see the module docstring) and
    # recorded steps few; bf16 makes no such promise, and there a long tail of a few rows costs only those rows.
    least = MIN_ROWS if lm.dtype == torch.float32 or record is not None else 1
    shape = (max(count, least), width - 1 + max_new, max_new, int(stochastic))
    batch = keep.get(shape) if keep is not None else None
    if batch is None:
        batch = SlotBatch(lm, shape[0], shape[1], max_new, pad_id, device, stochastic)
        if keep is not None:  # (another shape's buffers go: a KV cache per shape ever seen would not fit)
            keep.clear()
            keep[shape] = batch
    batch.reset(shape[0])
    batch.halving, batch.least = record is not None, least
    capacity = batch.bias.shape[-1]
    result = torch.full((n_rows, max_new), pad_id, dtype=torch.long, device=device)
    stops = torch.tensor(stop_ids, device=device)
    waiting = iter(range(n_rows))
    # Unusable scores raise at once when every token is looked at; else at the next look.
    valid = None if check_every == 1 else torch.ones((), dtype=torch.bool, device=device)

    def fill(free: list[int]) -> list[int]:
        """Load waiting rows into the free slots; returns the slots left idle."""
        taken = []
        for slot in free:
            row = next(waiting, None)
            if row is None:
                break
            taken.append((slot, row))
        draws = uniforms([r for _, r in taken]) if uniforms is not None and taken and not sampling.greedy else None
        for k, (slot, row) in enumerate(taken):
            keys, values = store.take(prompt_of[row])
            batch.load(slot, row, keys, values, ids[row, -1], draws[k] if draws is not None else None)
        return free[len(taken):]

    idle = fill(list(range(count)))
    live = count - len(idle)
    top, steps = int(batch.write_at.max()), 0  # (top: the furthest position a slot writes at, or beyond)
    while live:
        view = batch.view()
        feed, write_at, _, bias = view
        n = feed.shape[0]
        picked = torch.arange(n, device=device)
        bias[picked, 0, 0, write_at] = 0.0
        logits = batch.step(lm, view, min(capacity, -(-(top + 1) // window) * window), record)
        done, active = batch.done[:n], batch.active[:n]
        for proc in row_processors or ():
            logits = proc(batch.out[:n], done, logits)
        at = done.clamp(max=max_new - 1)
        uniform = batch.uniforms[picked, at] if batch.uniforms is not None else None
        token = sample_next(logits, sampling, valid, uniform)
        # (slots without a decoding row keep what they hold: a row cut at R tokens keeps its last one)
        batch.out[picked, at] = torch.where(active.bool(), token, batch.out[picked, at])
        done += active  # (idle slots stay where they are: they never run past the cache)
        write_at += active
        feed.copy_(token[:, None])
        active *= ~(torch.isin(token, stops) | (done >= max_new))
        top, steps = top + 1, steps + 1
        if steps % check_every:
            continue
        if valid is not None:
            check_sampled(valid)
        stopped = (active == 0).tolist()  # the look: the one wait for the device
        finished = [s for s in range(n) if stopped[s] and batch.row[s] >= 0]
        for s in finished:
            result[batch.row[s]] = batch.out[s]
            batch.row[s] = -1
        if finished:
            idle = fill(finished)
            live -= len(idle)
            if idle and live:  # nobody waiting: the live rows move to the front and the batch shrinks
                batch.compact([s for s in range(n) if batch.row[s] >= 0])
        top = int(batch.write_at[: batch.size].max())
    return result
