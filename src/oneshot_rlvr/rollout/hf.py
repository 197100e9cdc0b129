"""The Hugging Face rollout engine: the fallback for models the fast path does not cover.

It samples through the model's own forward (any causal LM: peft wrappers, other architectures, other devices),
or `model.generate` on request. Rows run in chunks of `max_batch_rows`, each until its longest row ends; in
1-shot RLVR every prompt of a chunk is the same text, so each distinct prompt is prefilled once and its keys
and values copied to the rows that share it. Llama-family models on CPU or CUDA take the fast path instead
(`oneshot_rlvr.rollout.fast`); `oneshot_rlvr.rollout.engine.make_engine` picks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import DynamicCache

from oneshot_rlvr.models.load import cache_keyword
from oneshot_rlvr.rollout.base import Rollouts, SamplingParams
from oneshot_rlvr.rollout.decode import HFStep, RowProcessor, decode, make_cache, prefill_inputs
from oneshot_rlvr.rollout.rows import (
    encode,
    in_chunks,
    row_draws,
    shared_rows,
    stop_and_pad,
    stream_seed,
    to_rollouts,
)


class HFRolloutEngine:
    """Samples from a Hugging Face causal LM through its own forward (the policy itself: `sync` just swaps it)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_rows: int = 256, share_prefill: bool = True,
                 logits_processor_factory: Callable[[int], Any] | None = None, use_generate: bool = False,
                 dtype: torch.dtype | None = None, row_processors: list[RowProcessor] | None = None,
                 stop: str | Sequence[int] = "chat"):
        """`logits_processor_factory(prompt_len)` may return an extra logits processor (Hugging Face's form) per
        chunk; `row_processors` adjust the scores by row (`RowProcessor`, the form both engines take).

        The engine decodes with `oneshot_rlvr.rollout.decode` (finished rows leave the batch);
        `use_generate=True` calls `model.generate` instead (which draws from torch's generator seeded with
        `seed`, not from the per-row streams). `dtype` (e.g. torch.bfloat16) samples from a copy of the weights
        in that dtype, refreshed by every `sync`.

        `stop` names what ends a response: a stop spec (`eos`, `chat`, `harness`, tokens, ids; see
        `oneshot_rlvr.models.stops`) or the token ids themselves.
        """
        self.dtype = dtype
        self.use_generate = use_generate
        self.logits_processor_factory = logits_processor_factory
        self.row_processors = row_processors
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.share_prefill = share_prefill
        self._copy_of: Any = None
        self.model: Any = None
        if model is not None:
            self.sync(model)
        self.stop_ids, self.pad_id = stop_and_pad(stop, tokenizer, model)

    def sync(self, model: Any) -> None:
        """Sample from `model`'s current weights from now on."""
        self.model = self._rollout_copy(model)

    def close(self) -> None:
        """Nothing to release."""

    def _rollout_copy(self, model: Any) -> Any:
        if self.dtype is None or next(model.parameters()).dtype == self.dtype:
            return model
        current = self.model if self.model is not None and self._copy_of is model else None
        if current is None:
            current = copy.deepcopy(model).to(self.dtype).eval().requires_grad_(False)
            self._copy_of = model
        else:
            with torch.no_grad():
                for dst, src in zip(current.parameters(), model.parameters(), strict=True):
                    dst.copy_(src)
        return current

    @torch.no_grad()
    def generate(
        self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None, first_row: int = 0
    ) -> Rollouts:
        """Sample n responses for each prompt; row i draws from the stream of (seed, first_row + i)."""
        base = stream_seed(seed)
        rows = [p for p in prompts for _ in range(n)]
        out = in_chunks(rows, self.max_batch_rows,
                        lambda chunk, i: self._generate_rows(chunk, sampling, base, first_row + i), self.pad_id)
        out.n = n
        return out

    def _generate_rows(self, rows: list[str], sampling: SamplingParams, seed: int, first_row: int) -> Rollouts:
        model = self.model
        ids, mask = encode(self.tokenizer, rows, next(model.parameters()).device)
        processors = [self.logits_processor_factory(ids.shape[1])] if self.logits_processor_factory else None
        shared = shared_rows(rows, ids) if self.share_prefill else None
        was_training = model.training
        model.eval()
        try:
            if self.use_generate:
                resp = self._hf_generate(ids, mask, sampling, shared, processors)
            else:
                cache = make_cache(ids.shape[1] + sampling.max_new_tokens)
                if shared is not None:
                    self._hf_prefill(cache, ids, mask, *shared)
                step = HFStep(model, cache, cache_keyword(model))
                resp = decode(step, ids, mask, sampling, self.stop_ids, self.pad_id, prefilled=shared is not None,
                              processors=processors, uniforms=row_draws(seed, first_row, len(rows), sampling,
                                                                        ids.device),
                              row_processors=self.row_processors)
        finally:
            model.train(was_training)
        return to_rollouts(self.tokenizer, self.stop_ids, self.pad_id, ids, mask, resp)

    def _hf_generate(self, ids: torch.Tensor, mask: torch.Tensor, sampling: SamplingParams,
                     shared: tuple[torch.Tensor, torch.Tensor] | None, processors: list[Any] | None) -> torch.Tensor:
        kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_new_tokens, eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
            do_sample=not sampling.greedy)
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if processors:
            kwargs["logits_processor"] = processors
        if shared is not None:  # generate follows the forward's cache keyword rename
            kwargs[cache_keyword(self.model)] = self._hf_prefill(DynamicCache(), ids, mask, *shared)
        return self.model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **kwargs)[:, ids.shape[1] :]

    def _hf_prefill(self, cache: Any, ids: torch.Tensor, mask: torch.Tensor, unique: torch.Tensor,
                    slots: torch.Tensor) -> Any:
        """`cache` filled with all but the last token of each distinct prompt, then copied to its rows."""
        u_ids, u_mask, position_ids = prefill_inputs(ids, mask, unique)
        self.model(input_ids=u_ids, attention_mask=u_mask, position_ids=position_ids,
                   use_cache=True, **{cache_keyword(self.model): cache})
        cache.batch_select_indices(slots)
        return cache


__all__ = ["HFRolloutEngine"]
