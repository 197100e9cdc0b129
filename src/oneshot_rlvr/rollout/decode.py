"""A lean decode loop for sampling many responses from a Hugging Face causal LM.

Compared with `model.generate` it does less per step (no generic logits-processor and stopping
machinery) and it drops finished rows from the batch and the KV cache as soon as they stop, so a
response that ends early stops costing decode time: real RLVR responses end at very different
lengths. It continues from a KV cache of all but the last prompt token (the shared 1-shot prefill).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from oneshot_rlvr.rollout.base import SamplingParams

# A logits processor in Hugging Face's form: (input_ids of the active rows, scores) -> scores.
Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# A logits processor by row, for loops whose rows are at different steps (continuous batching):
# (responses so far (B, R), right-padded; tokens generated so far by each row (B,); scores (B, V)) -> scores.
RowProcessor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def make_cache(capacity: int) -> Any:
    """A DynamicCache whose layers write into preallocated buffers instead of concatenating.

    The stock layer concatenates its keys and values with every new token, copying the whole cache at
    each decode step (quadratic in the response length; over half the decode time of a small model).
    These layers reserve `capacity` positions once and fill them in place.
    """
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class _Layer(DynamicLayer):
        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            keys: Any = self.keys
            values: Any = self.values
            used = keys.shape[-2] if keys.dim() == 4 else 0
            need = used + key_states.shape[-2]
            kbuf: torch.Tensor | None = getattr(self, "_kbuf", None)
            # A new buffer when there is none, it is full, or the batch was re-indexed (rows dropped).
            if (kbuf is None or kbuf.shape[-2] < need or kbuf.shape[0] != key_states.shape[0]
                    or keys.data_ptr() != kbuf.data_ptr()):
                size = max(need, capacity, 2 * used)
                shape = (*key_states.shape[:2], size, key_states.shape[-1])
                kbuf, vbuf = key_states.new_empty(shape), value_states.new_empty(
                    (*value_states.shape[:2], size, value_states.shape[-1]))
                if used:
                    kbuf[:, :, :used] = keys
                    vbuf[:, :, :used] = values
                self._kbuf, self._vbuf = kbuf, vbuf
            self._kbuf[:, :, used:need] = key_states
            self._vbuf[:, :, used:need] = value_states
            self.keys, self.values = self._kbuf[:, :, :need], self._vbuf[:, :, :need]
            return self.keys, self.values

    cache = DynamicCache()
    if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:
        cache.layer_class_to_replicate = _Layer
    return cache


def prefill_inputs(ids: torch.Tensor, mask: torch.Tensor, unique: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Tokens, mask and positions of all but the last token of the distinct prompts `unique` (row indices of
    left-padded `ids`): what a shared prefill runs before the decode loop takes over."""
    u_ids, u_mask = ids[unique, :-1], mask[unique, :-1]
    return u_ids, u_mask, (u_mask.cumsum(-1) - 1).clamp(min=0)


def sample_next(scores: torch.Tensor, sampling: SamplingParams, valid: torch.Tensor | None = None,
                uniform: torch.Tensor | None = None) -> torch.Tensor:
    """(B, V) next-token scores -> (B,) token ids: greedy, or temperature / top-k / top-p sampling.

    Scores that leave no probability to sample from (NaN, all -inf) raise an error; with `valid` (a bool
    tensor on the scores' device) the check is recorded there instead (`valid &= ok`), so that the caller
    need not wait for the device at every token, and raises it later (`check_sampled`). `uniform` (B,)
    float64 in [0, 1) is each row's draw (`oneshot_rlvr.rollout.streams`); None draws from torch's generator.
    """
    if sampling.greedy:
        return scores.argmax(dim=-1)
    scores = scores.float() / sampling.temperature
    if sampling.top_k and sampling.top_k < scores.shape[-1]:
        kth = torch.topk(scores, sampling.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = sorted_scores.softmax(dim=-1)
        # Drop a token when the mass before it already reaches top_p (the best token always stays).
        drop = (probs.cumsum(dim=-1) - probs) >= sampling.top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    return _inverse_cdf_sample(scores.softmax(dim=-1), valid, uniform)


def check_sampled(valid: torch.Tensor) -> None:
    """Raise the error `sample_next` deferred into `valid`, if any row had nothing to sample from."""
    if not bool(valid.all()):  # as torch.multinomial, refuse to sample garbage
        raise RuntimeError("probability tensor contains either inf, nan or element < 0")


def _inverse_cdf_sample(probs: torch.Tensor, valid: torch.Tensor | None = None,
                        uniform: torch.Tensor | None = None) -> torch.Tensor:
    """One draw per row of (B, V) probabilities: the first token whose cumulative mass exceeds a uniform
    draw. Exact like torch.multinomial, but an order of magnitude faster on CPU (multinomial draws an
    exponential variate per vocabulary entry); zero-probability tokens are never picked."""
    cdf = probs.double().cumsum(dim=-1)
    total = cdf[:, -1]
    ok = (torch.isfinite(total) & (total > 0)).all()
    if valid is None:
        check_sampled(ok)
    else:
        valid &= ok
    if uniform is None:
        uniform = torch.rand(probs.shape[0], dtype=cdf.dtype, device=probs.device)
    u = uniform.to(cdf.dtype)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)


class Step(Protocol):
    """One forward of the decode loop over the rows still running."""

    def __call__(self, feed: torch.Tensor, positions: torch.Tensor, attn: torch.Tensor | None) -> torch.Tensor:
        """Next-token logits (B, V) after `feed` (B, T) at `positions` (B, T); `attn` (B, S) marks the real
        tokens of every position so far, or is None when there is no padding."""
        ...

    def select(self, keep: torch.Tensor) -> None:
        """Keep only these rows (finished rows leave the batch and the cache)."""
        ...


class HFStep:
    """A Step through the Hugging Face forward and a `make_cache` cache."""

    def __init__(self, model: Any, cache: Any, cache_keyword: str = "past_key_values"):
        self.model, self.cache, self.cache_keyword = model, cache, cache_keyword

    def __call__(self, feed: torch.Tensor, positions: torch.Tensor, attn: torch.Tensor | None) -> torch.Tensor:
        out = self.model(input_ids=feed, attention_mask=attn, position_ids=positions, use_cache=True,
                         **{self.cache_keyword: self.cache})
        return out.logits[:, -1]

    def select(self, keep: torch.Tensor) -> None:
        self.cache.batch_select_indices(keep)


@torch.no_grad()
def decode(
    step: Step,
    ids: torch.Tensor,
    mask: torch.Tensor,
    sampling: SamplingParams,
    stop_ids: list[int],
    pad_id: int,
    *,
    prefilled: bool = False,
    processors: list[Processor] | None = None,
    check_every: int | None = None,
    uniforms: torch.Tensor | None = None,
    row_processors: list[RowProcessor] | None = None,
) -> torch.Tensor:
    """Generate up to `sampling.max_new_tokens` tokens for each left-padded prompt row.

    `prefilled`: the step's cache already holds every prompt token but the last (for all rows).
    `check_every`: how many tokens pass between looks at which rows have stopped (default 1 on CPU, 16 on
    CUDA). Each look waits for the device; between looks, the host queues the next tokens while the GPU
    computes, and stopped rows keep their place (writing `pad_id`) until the next look removes them.
    `uniforms` (B, R) float64: row b's draw for its token t (`oneshot_rlvr.rollout.streams`); None draws from
    torch's generator. `row_processors` see each row's response so far (`RowProcessor`).
    Returns (B, R) response tokens, each row ending with its stop token or cut at the limit, `pad_id`
    after that.
    """
    batch, device = ids.shape[0], ids.device
    out = torch.full((batch, sampling.max_new_tokens), pad_id, dtype=ids.dtype, device=device)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    feed, feed_pos = (ids[:, -1:], positions[:, -1:]) if prefilled else (ids, positions)
    stops = torch.tensor(stop_ids, device=device)
    active = torch.arange(batch, device=device)  # original row of each row still decoding
    # No padding anywhere (the 1-shot batch: one prompt repeated): attention skips the mask, and it is not kept.
    attn: torch.Tensor | None = None if bool(mask.all()) else mask
    seq, pos = ids, positions[:, -1:]
    every = check_every or (16 if device.type == "cuda" else 1)
    # Unusable scores raise at once when every token is looked at; else at the next look.
    valid = None if every == 1 else torch.ones((), dtype=torch.bool, device=device)
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)  # rows that stopped since the last look
    steps = 0
    for t in range(sampling.max_new_tokens):
        logits = step(feed, feed_pos, attn)
        for proc in processors or ():
            logits = proc(seq, logits)
        if row_processors:
            done = torch.full_like(active, t)
            for row_proc in row_processors:
                logits = row_proc(out[active], done, logits)
        uniform = uniforms[active, t] if uniforms is not None else None
        token = sample_next(logits, sampling, valid, uniform).masked_fill(stopped, pad_id)
        out[active, t] = token
        steps = t + 1
        stopped = stopped | torch.isin(token, stops)
        if steps == sampling.max_new_tokens:
            break
        if steps % every == 0:  # a look: the one wait for the device
            if valid is not None:
                check_sampled(valid)
            live = int((~stopped).sum())
            if live == 0:
                break
            if live < len(stopped):  # compact: stopped rows leave the batch and the cache
                keep = (~stopped).nonzero().squeeze(-1)
                step.select(keep)
                active, token, pos, seq = active[keep], token[keep], pos[keep], seq[keep]
                stopped = stopped[keep]
                attn = attn[keep] if attn is not None else None
        seq = torch.cat([seq, token[:, None]], dim=1) if processors else seq
        if attn is not None:
            attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
        pos = pos + 1
        feed, feed_pos = token[:, None], pos
    if valid is not None:
        check_sampled(valid)
    if every > 1:  # (the last look may come after every row has stopped: drop the columns after the last stop)
        is_stop = torch.isin(out[:, :steps], stops)
        ends = torch.where(is_stop.any(1), is_stop.int().argmax(1) + 1, steps)
        steps = int(ends.max())
    return out[:, :steps]
