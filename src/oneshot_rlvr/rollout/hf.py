"""The Hugging Face `generate` rollout engine.

In 1-shot RLVR every prompt in the batch is the same text. Instead of prefilling it once per row,
the engine prefills each distinct prompt once, copies the key/value cache to all rows that share
it, and decodes from there. Llama-family models decode through `oneshot_rlvr.rollout.fastpath` (fused
weights, no per-step Hugging Face bookkeeping), on CUDA replaying each step from a CUDA graph
(`oneshot_rlvr.rollout.graphs`); other models through their own forward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import DynamicCache

from oneshot_rlvr.models.load import cache_keyword
from oneshot_rlvr.models.stops import resolve_stop
from oneshot_rlvr.rollout.base import Rollouts, SamplingParams, concat_rollouts
from oneshot_rlvr.rollout.decode import HFStep, RowProcessor, Step, decode, make_cache, prefill_inputs
from oneshot_rlvr.rollout.fastpath import FastLM, prefilled_step, unsupported_reason
from oneshot_rlvr.rollout.graphs import GraphDecoder, cuda_graph_recorder
from oneshot_rlvr.rollout.parallel import DecodeJob, SamplerPool, split_rows
from oneshot_rlvr.rollout.slots import decode_continuous
from oneshot_rlvr.rollout.streams import row_uniforms

log = logging.getLogger(__name__)


class HFRolloutEngine:
    """Samples from a Hugging Face causal LM (the policy itself: `sync` just swaps the reference)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_rows: int = 256, share_prefill: bool = True,
                 logits_processor_factory: Callable[[int], Any] | None = None, use_generate: bool = False,
                 dtype: torch.dtype | None = None, fast: bool | None = None, processes: int = 1,
                 graphs: bool | None = None, continuous: bool = True,
                 row_processors: list[RowProcessor] | None = None, stop: str | Sequence[int] = "chat"):
        """`logits_processor_factory(prompt_len)` may return an extra logits processor per generate call.

        The engine decodes with `oneshot_rlvr.rollout.decode` (finished rows leave the batch);
        `use_generate=True` calls `model.generate` instead. `dtype` (e.g. torch.bfloat16) samples from a
        copy of the weights in that dtype, refreshed by every `sync`: cheaper decoding when the trained
        weights are float32, as the paper's bf16 vLLM rollouts.

        `fast` decodes through `FastLM`; None (default) uses it on CPU and CUDA for the models it covers (on
        CPU about 2x faster per decode step than the Hugging Face forward). True demands it (an error names
        what it does not cover).

        `graphs` runs the fast path's decode steps from static buffers (`GraphDecoder`), recorded as CUDA
        graphs on CUDA: None (default) does so on CUDA, True also elsewhere (eagerly: what the tests check).

        `processes` > 1 splits each batch's rows over that many sampling processes on the fast path
        (`oneshot_rlvr.rollout.parallel`; on CPU a small model's decode leaves cores idle otherwise). The
        samples then depend on the number of processes, not only on the seed. Call `close` when done.

        `continuous` (default) decodes on the CPU fast path with continuous batching
        (`oneshot_rlvr.rollout.slots`): `max_batch_rows` slots, each refilled with the next waiting row as
        soon as its row stops. False runs the rows in chunks of `max_batch_rows`, each until its longest row
        ends (the comparison; also what the other paths do). Either way each row samples from its own stream
        (`oneshot_rlvr.rollout.streams`). `row_processors` adjust the scores by row (`RowProcessor`), in
        either loop; `logits_processor_factory`'s Hugging Face form needs the chunked loop, which it selects.

        `stop` names what ends a response: a stop spec (`eos`, `chat`, `harness`, tokens, ids; see
        `oneshot_rlvr.models.stops`) or the token ids themselves.
        """
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.processes = processes
        self._pool: SamplerPool | None = None
        self._warned = False
        self.dtype = dtype
        self.fast = fast
        self.use_generate = use_generate
        self._copy_of: Any = None
        self._fast: FastLM | None = None
        self._fast_of: Any = None
        self.graphs = graphs
        self._graphs: GraphDecoder | None = None
        self.model: Any = None
        if model is not None:
            self.sync(model)
        self.logits_processor_factory = logits_processor_factory
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.share_prefill = share_prefill
        self.continuous = continuous
        self.row_processors = row_processors
        self.stop_ids = resolve_stop(stop, tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]

    def sync(self, model: Any) -> None:
        """Sample from `model`'s current weights from now on."""
        if self._fast is not None and self._fast_of is model:  # every step of training: new values only
            self._fast.refresh(model)
            if self._pool is not None:
                self._pool.weights_changed()
            return
        self.close()
        if self._use_fast(model):
            # Weights sampled from other processes must be this engine's own (they move to shared memory).
            self._fast = FastLM.from_model(model, self.dtype, copy=self.processes > 1)
            self._fast_of = model
            on_cuda = self._fast.embed.device.type == "cuda"
            use_graphs = self.graphs or (self.graphs is None and on_cuda)
            self._graphs = GraphDecoder(self._fast, cuda_graph_recorder() if on_cuda else None) if use_graphs else None
            self.model = model  # the fused copy samples; no second Hugging Face copy is needed
            return
        if self.processes > 1 and not self._warned:
            self._warned = True
            log.warning("processes=%d ignored: sampling processes run on the CPU fast path only (this model "
                        "samples through its own forward)", self.processes)
        self._fast = self._graphs = None
        self.model = self._rollout_copy(model)

    def close(self) -> None:
        """Stop the sampling processes, if any (a later rollout starts them again)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _use_fast(self, model: Any) -> bool:
        if self.use_generate or self.fast is False:
            return False
        reason = unsupported_reason(model)
        if self.fast and reason is not None:
            raise ValueError(f"fast decoding does not cover this model: {reason}")
        return reason is None and (self.fast or next(model.parameters()).device.type in ("cpu", "cuda"))

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
        self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None, first_row: int = 0
    ) -> Rollouts:
        """Sample n responses for each prompt. Row i (of B * n) draws from the stream of (seed, first_row + i)
        (None: a seed from torch's generator), so its sample does not depend on `max_batch_rows` nor on the loop
        that schedules it (bit for bit on a float32 CPU; the Hugging Face `generate` and the sampling processes
        draw from torch's generator instead, seeded with `seed`)."""
        if seed is not None:
            torch.manual_seed(seed)
        base = seed if seed is not None else int(torch.randint(0, 2**62, ()))
        rows = [p for p in prompts for _ in range(n)]
        if self._continuous_ok():
            out = self._generate_continuous(rows, sampling, base, first_row)
        else:
            parts = [self._generate_rows(rows[i : i + self.max_batch_rows], sampling, base, first_row + i)
                     for i in range(0, len(rows), self.max_batch_rows)]
            out = concat_rollouts(parts, pad_id=self.pad_id)
        out.n = n
        return out

    def _continuous_ok(self) -> bool:
        """Continuous batching runs on the CPU fast path (CUDA keeps its recorded steps, chunked)."""
        return (self.continuous and self._fast is not None and self._graphs is None and self.processes == 1
                and self.logits_processor_factory is None and self._fast.embed.device.type == "cpu")

    def _encode(self, rows: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        # Prompts must be left-padded so every row's next token is in the last column, whatever the
        # tokenizer was configured with.
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
        return enc.input_ids.to(device), enc.attention_mask.to(device)

    def _generate_continuous(self, rows: list[str], sampling: SamplingParams, seed: int, first_row: int) -> Rollouts:
        assert self._fast is not None
        ids, mask = self._encode(rows)
        number: dict[str, int] = {}
        prompt_of = [number.setdefault(text, len(number)) for text in rows]

        def draws(picked: list[int]) -> torch.Tensor:
            return row_uniforms(seed, [first_row + r for r in picked], sampling.max_new_tokens, ids.device)

        resp = decode_continuous(self._fast, ids, mask, prompt_of, sampling, self.stop_ids, self.pad_id,
                                 slots=self.max_batch_rows, uniforms=draws, row_processors=self.row_processors)
        is_stop = torch.isin(resp, torch.tensor(self.stop_ids, device=resp.device))
        ends = torch.where(is_stop.any(1), is_stop.int().argmax(1) + 1, resp.shape[1])
        return self._to_rollouts(ids, mask, resp[:, : int(ends.max())])

    def _generate_rows(self, rows: list[str], sampling: SamplingParams, seed: int, first_row: int) -> Rollouts:
        model = self.model
        ids, mask = self._encode(rows)
        uniforms = None if sampling.greedy else row_uniforms(
            seed, range(first_row, first_row + len(rows)), sampling.max_new_tokens, ids.device)
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
        shared = _shared_rows(rows, ids) if self.share_prefill else None
        was_training = model.training
        model.eval()
        try:
            if self.use_generate:
                if shared is not None:  # generate follows the forward's cache keyword rename
                    kwargs[cache_keyword(model)] = self._hf_prefill(DynamicCache(), ids, mask, *shared)
                resp = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **kwargs)[:, ids.shape[1] :]
            elif self._fast is not None and self.processes > 1 and ids.shape[0] > 1:
                resp = self._decode_in_processes(rows, ids, mask, sampling, kwargs.get("logits_processor", []))
            else:
                step = self._step(ids, mask, sampling, shared)
                # (the static step prefills every prompt itself, shared or not)
                prefilled = shared is not None or self._graphs is not None
                resp = decode(step, ids, mask, sampling, self.stop_ids, self.pad_id, prefilled=prefilled,
                              processors=kwargs.get("logits_processor"), uniforms=uniforms,
                              row_processors=self.row_processors)
        finally:
            model.train(was_training)
        return self._to_rollouts(ids, mask, resp)

    def _decode_in_processes(self, rows: list[str], ids: torch.Tensor, mask: torch.Tensor, sampling: SamplingParams,
                             processors: list[Any]) -> torch.Tensor:
        """The rows split over the sampling processes, each slice with its own seed drawn from the caller's RNG
        (helpers get pickled copies of `processors`)."""
        assert self._fast is not None
        if self._pool is None or self._pool.closed:
            self._pool = SamplerPool(self._fast, self.processes)
        base_seed = int(torch.randint(0, 2**62, ()))
        jobs = []
        for k, part in enumerate(split_rows(len(rows), self.processes)):
            p_ids, p_mask = ids[part], mask[part]
            jobs.append(DecodeJob(
                p_ids, p_mask, sampling, self.stop_ids, self.pad_id, seed=base_seed + k,
                shared=_shared_rows(rows[part], p_ids) if self.share_prefill else None, processors=processors))
        parts = self._pool.run(jobs)
        width = max(p.shape[1] for p in parts)
        return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1]), value=self.pad_id) for p in parts])

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, sampling: SamplingParams,
              shared: tuple[torch.Tensor, torch.Tensor] | None) -> Step:
        """The decode loop's forward, its cache prefilled with all but the last prompt token when shared (and
        always on the static step)."""
        if self._graphs is not None:
            return self._graphs.start(ids, mask, sampling.max_new_tokens, shared)
        capacity = ids.shape[1] + sampling.max_new_tokens
        if self._fast is None:
            cache = make_cache(capacity)
            if shared is not None:
                self._hf_prefill(cache, ids, mask, *shared)
            return HFStep(self.model, cache, cache_keyword(self.model))
        return prefilled_step(self._fast, ids, mask, sampling.max_new_tokens, shared)

    def _hf_prefill(self, cache: Any, ids: torch.Tensor, mask: torch.Tensor, unique: torch.Tensor,
                    slots: torch.Tensor) -> Any:
        """`cache` filled with all but the last token of each distinct prompt, then copied to its rows."""
        u_ids, u_mask, position_ids = prefill_inputs(ids, mask, unique)
        self.model(input_ids=u_ids, attention_mask=u_mask, position_ids=position_ids,
                   use_cache=True, **{cache_keyword(self.model): cache})
        cache.batch_select_indices(slots)
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


def _shared_rows(rows: list[str], ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first row of each distinct prompt, each row's prompt slot), or None when no prompt repeats."""
    first_row: dict[str, int] = {}
    for i, text in enumerate(rows):
        first_row.setdefault(text, i)
    if len(first_row) == len(rows) or ids.shape[1] < 2:
        return None  # nothing shared: prefilling row by row is as good
    slot = {text: k for k, text in enumerate(first_row)}
    return (torch.tensor(list(first_row.values()), device=ids.device),
            torch.tensor([slot[t] for t in rows], device=ids.device))


__all__ = ["HFRolloutEngine", "concat_rollouts"]
