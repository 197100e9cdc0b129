"""`FastRolloutEngine`: samples through `FastLM`, with continuous batching or in chunks, on CPU or CUDA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from oneshot_rlvr.rollout.base import Rollouts, SamplingParams
from oneshot_rlvr.rollout.decode import RowProcessor, Step, decode
from oneshot_rlvr.rollout.fast.graphs import GraphDecoder, Recorder, cuda_graph_recorder
from oneshot_rlvr.rollout.fast.lm import FastLM, prefilled_step, unsupported_reason
from oneshot_rlvr.rollout.fast.slots import WINDOW, SlotBatch, decode_continuous
from oneshot_rlvr.rollout.rows import (
    encode,
    in_chunks,
    row_draws,
    shared_rows,
    stop_and_pad,
    stream_seed,
    to_rollouts,
    trim_after_last_stop,
)
from oneshot_rlvr.rollout.streams import row_uniforms

GRAPH_WINDOW = 128
"""Attention windows of recorded steps are multiples of this (fewer recordings than the CPU's finer windows)."""


class FastRolloutEngine:
    """Samples from a Llama-family model (Qwen2, Llama, Mistral) through fused copies of its weights."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_rows: int = 256, dtype: torch.dtype | None = None,
                 continuous: bool = True, graphs: bool | None = None, recorder: Recorder | None = None,
                 row_processors: list[RowProcessor] | None = None, stop: str | Sequence[int] = "chat",
                 check_every: int | None = None):
        """`max_batch_rows`: the decode slots (continuous) or the rows of a chunk. `dtype` (e.g. torch.bfloat16)
        samples from a copy of the weights in that dtype, refreshed by every `sync`.

        `continuous` (default): a finished row's slot takes the next waiting row at once
        (`oneshot_rlvr.rollout.fast.slots`); False runs chunks of `max_batch_rows`, each until its longest row
        ends (for comparison). Either way row i samples from its own stream, so the samples depend on neither.

        `graphs` replays each decode step from a recording: None (default) does so on CUDA (CUDA graphs), True
        also elsewhere (eagerly, or through `recorder`: how the tests exercise it), False never. `check_every`:
        tokens between looks at which rows stopped (default 1 on CPU, 16 on CUDA: each look waits for the GPU).
        `row_processors` adjust the scores by row (`RowProcessor`). `stop`: what ends a response (a stop spec
        of `oneshot_rlvr.models.stops`, or token ids).
        """
        self.dtype, self.continuous, self.graphs, self.recorder = dtype, continuous, graphs, recorder
        self.row_processors, self.check_every = row_processors, check_every
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.lm: FastLM | None = None
        self._lm_of: Any = None
        self._record: Recorder | None = None
        self._graphs: GraphDecoder | None = None
        self._slots: dict[tuple[int, ...], SlotBatch] = {}  # the slots' buffers (and recordings), kept
        if model is not None:
            self.sync(model)
        self.stop_ids, self.pad_id = stop_and_pad(stop, tokenizer, model)

    def sync(self, model: Any) -> None:
        """Sample from `model`'s current weights from now on (every training step: new values, same buffers)."""
        if self.lm is not None and self._lm_of is model:
            self.lm.refresh(model)
            return
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"the fast rollout path does not cover this model: {reason}")
        self.lm, self._lm_of = FastLM.from_model(model, self.dtype), model
        on_cuda = self.lm.embed.device.type == "cuda"
        if self.graphs or (self.graphs is None and on_cuda):
            self._record = self.recorder or (cuda_graph_recorder() if on_cuda else None)
            self._graphs = GraphDecoder(self.lm, self._record)
        else:
            self._record = self._graphs = None
        self._slots = {}

    def close(self) -> None:
        """Nothing to release."""

    @torch.no_grad()
    def generate(
        self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None, first_row: int = 0
    ) -> Rollouts:
        """Sample n responses for each prompt; row i draws from the stream of (seed, first_row + i), so its sample
        depends on neither `max_batch_rows` nor the loop (bit for bit on a float32 CPU)."""
        if self.lm is None:
            raise RuntimeError("FastRolloutEngine.generate before sync: no model to sample from")
        base = stream_seed(seed)
        rows = [p for p in prompts for _ in range(n)]
        if self.continuous:
            out = self._continuous(rows, sampling, base, first_row)
        else:
            out = in_chunks(rows, self.max_batch_rows,
                            lambda chunk, i: self._chunk(chunk, sampling, base, first_row + i), self.pad_id)
        out.n = n
        return out

    def _continuous(self, rows: list[str], sampling: SamplingParams, seed: int, first_row: int) -> Rollouts:
        assert self.lm is not None
        device = self.lm.embed.device
        ids, mask = encode(self.tokenizer, rows, device)
        number: dict[str, int] = {}
        prompt_of = [number.setdefault(text, len(number)) for text in rows]

        def draws(picked: list[int]) -> torch.Tensor:
            return row_uniforms(seed, [first_row + r for r in picked], sampling.max_new_tokens, device)

        recorded = self._record is not None
        resp = decode_continuous(
            self.lm, ids, mask, prompt_of, sampling, self.stop_ids, self.pad_id, slots=self.max_batch_rows,
            uniforms=draws, row_processors=self.row_processors, record=self._record,
            check_every=self.check_every or (16 if device.type == "cuda" else 1),
            window=GRAPH_WINDOW if recorded else WINDOW, keep=self._slots if recorded else None)
        return to_rollouts(self.tokenizer, self.stop_ids, self.pad_id, ids, mask,
                           trim_after_last_stop(resp, self.stop_ids))

    def _chunk(self, rows: list[str], sampling: SamplingParams, seed: int, first_row: int) -> Rollouts:
        assert self.lm is not None
        ids, mask = encode(self.tokenizer, rows, self.lm.embed.device)
        shared = shared_rows(rows, ids)
        step: Step
        if self._graphs is not None:  # (the static step prefills every prompt itself, shared or not)
            step = self._graphs.start(ids, mask, sampling.max_new_tokens, shared)
        else:
            step = prefilled_step(self.lm, ids, mask, sampling.max_new_tokens, shared)
        resp = decode(step, ids, mask, sampling, self.stop_ids, self.pad_id,
                      prefilled=shared is not None or self._graphs is not None, check_every=self.check_every,
                      uniforms=row_draws(seed, first_row, len(rows), sampling, ids.device),
                      row_processors=self.row_processors)
        return to_rollouts(self.tokenizer, self.stop_ids, self.pad_id, ids, mask, resp)


__all__ = ["GRAPH_WINDOW", "FastRolloutEngine"]
