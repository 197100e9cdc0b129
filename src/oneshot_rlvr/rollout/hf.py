"""The Hugging Face `generate` rollout engine.

In 1-shot RLVR every prompt in the batch is the same text. Instead of prefilling it once per row,
the engine prefills each distinct prompt once, copies the key/value cache to all rows that share
it, and lets `generate` continue from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache

from oneshot_rlvr.models.load import stop_token_ids
from oneshot_rlvr.rollout.base import Rollouts, SamplingParams, concat_rollouts
from oneshot_rlvr.rollout.decode import decode, make_cache


class HFRolloutEngine:
    """Samples from a Hugging Face causal LM (the policy itself: `sync` just swaps the reference)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_rows: int = 256, share_prefill: bool = True,
                 logits_processor_factory: Callable[[int], Any] | None = None, use_generate: bool = False,
                 dtype: torch.dtype | None = None):
        """`logits_processor_factory(prompt_len)` may return an extra logits processor per generate call.

        The engine decodes with `oneshot_rlvr.rollout.decode` (finished rows leave the batch);
        `use_generate=True` calls `model.generate` instead. `dtype` (e.g. torch.bfloat16) samples from a
        copy of the weights in that dtype, refreshed by every `sync`: cheaper decoding when the trained
        weights are float32, as the paper's bf16 vLLM rollouts.
        """
        self.dtype = dtype
        self._copy_of: Any = None
        self._policy = model
        self.model: Any = self._rollout_copy(model) if model is not None else None
        self.use_generate = use_generate
        self.logits_processor_factory = logits_processor_factory
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.share_prefill = share_prefill
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]

    def sync(self, model: Any) -> None:
        self._policy = model
        self.model = self._rollout_copy(model)

    def _rollout_copy(self, model: Any) -> Any:
        if self.dtype is None or next(model.parameters()).dtype == self.dtype:
            return model
        current = self.model if getattr(self, "model", None) is not None and self._copy_of is model else None
        if current is None:
            import copy

            current = copy.deepcopy(model).to(self.dtype).eval().requires_grad_(False)
            self._copy_of = model
        else:
            with torch.no_grad():
                for dst, src in zip(current.parameters(), model.parameters(), strict=True):
                    dst.copy_(src)
        return current

    @torch.no_grad()
    def generate(
        self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None
    ) -> Rollouts:
        if seed is not None:
            torch.manual_seed(seed)
        rows = [p for p in prompts for _ in range(n)]
        parts = [self._generate_rows(rows[i : i + self.max_batch_rows], sampling)
                 for i in range(0, len(rows), self.max_batch_rows)]
        out = concat_rollouts(parts, pad_id=self.pad_id)
        out.n = n
        return out

    def _generate_rows(self, rows: list[str], sampling: SamplingParams) -> Rollouts:
        model = self.model
        device = next(model.parameters()).device
        # Prompts must be left-padded so every row's next token is in the last column, whatever the
        # tokenizer was configured with.
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc.input_ids.to(device), enc.attention_mask.to(device)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=sampling.max_new_tokens, eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
            do_sample=not sampling.greedy,
        )
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.logits_processor_factory is not None:
            kwargs["logits_processor"] = [self.logits_processor_factory(ids.shape[1])]
        cache = self._shared_prefill(rows, ids, mask, sampling) if self.share_prefill else None
        if cache is not None:
            kwargs[_cache_keyword(model.forward)] = cache  # generate follows the forward rename
        was_training = model.training
        model.eval()
        try:
            if self.use_generate:
                resp = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **kwargs)[:, ids.shape[1] :]
            else:
                resp = decode(model, ids, mask, sampling, self.stop_ids, self.pad_id, cache=cache,
                              cache_keyword=_cache_keyword(model.forward), processors=kwargs.get("logits_processor"))
        finally:
            model.train(was_training)
        return self._to_rollouts(ids, mask, resp)

    def _shared_prefill(self, rows: list[str], ids: torch.Tensor, mask: torch.Tensor, sampling: SamplingParams) -> Any:
        """A KV cache of all but the last prompt token, computed once per distinct prompt."""
        first_row: dict[str, int] = {}
        for i, text in enumerate(rows):
            first_row.setdefault(text, i)
        if len(first_row) == len(rows) or ids.shape[1] < 2:
            return None  # nothing shared: plain generate is as good
        unique = torch.tensor(list(first_row.values()), device=ids.device)
        u_ids, u_mask = ids[unique, :-1], mask[unique, :-1]
        position_ids = (u_mask.cumsum(-1) - 1).clamp(min=0)
        # model.generate wants its own cache class; our decode loop fills preallocated buffers.
        cache = DynamicCache() if self.use_generate else make_cache(ids.shape[1] + sampling.max_new_tokens)
        self.model(input_ids=u_ids, attention_mask=u_mask, position_ids=position_ids,
                   use_cache=True, **{_cache_keyword(self.model.forward): cache})
        slot = {text: k for k, text in enumerate(first_row)}
        cache.batch_select_indices(torch.tensor([slot[t] for t in rows], device=ids.device))
        return cache

    def _to_rollouts(self, ids: torch.Tensor, mask: torch.Tensor, resp: torch.Tensor) -> Rollouts:
        stops = torch.tensor(self.stop_ids, device=resp.device)
        is_stop = torch.isin(resp, stops)
        # Keep tokens up to and including the first stop token.
        before_stop = (is_stop.cumsum(dim=1) - is_stop.long()) == 0
        resp_mask = before_stop.long()
        lengths = resp_mask.sum(dim=1)
        finished = (is_stop & before_stop).any(dim=1)
        resp = torch.where(resp_mask.bool(), resp, torch.full_like(resp, self.pad_id))
        texts = []
        for row, length, done in zip(resp.tolist(), lengths.tolist(), finished.tolist(), strict=True):
            body = row[: length - 1] if done else row[:length]
            texts.append(self.tokenizer.decode(body, skip_special_tokens=True))
        reasons = ["eos" if d else "length" for d in finished.tolist()]
        return Rollouts(ids.cpu(), mask.cpu(), resp.cpu(), resp_mask.cpu(), texts, reasons, n=1)


def _cache_keyword(fn: Any) -> str:
    """`cache` in recent transformers, `past_key_values` before the rename."""
    import inspect

    owner = getattr(fn, "__self__", None)
    base = getattr(owner, "get_base_model", None)
    if callable(base):  # a peft wrapper forwards **kwargs: ask the model it wraps
        fn = base().forward
    return "cache" if "cache" in inspect.signature(fn).parameters else "past_key_values"


__all__ = ["HFRolloutEngine", "concat_rollouts"]
