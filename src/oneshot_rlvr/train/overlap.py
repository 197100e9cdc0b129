"""Reference log-probs computed while the responses are still being sampled (CPU).

On CPU a small model's decode step is bound by the fixed cost of its many small kernels: it runs as fast on
one core as on two, so the second core idles through the whole rollout. `ReferenceStream` puts it to work.
It follows the decode loop (a `ResponseListener`), and every `chunk` new tokens a worker thread feeds them
to the reference model, which keeps its own key/value cache. When sampling ends, only the last chunk is left
to score. Measured on the benchmark model (2 vCPUs, 64 rows x 128 tokens): the whole reference pass hid
behind the decode, which kept its speed on one thread.

The log-probs are those of `score_tokens` on the finished batch, computed in pieces: the same positions,
masks and temperature. The rounding differs (other matrix shapes), as it would with another micro-batch
size. The worker thread uses its own share of the intra-op threads, and the sampling thread the rest while
the rollout runs.
"""

from __future__ import annotations

import functools
import queue
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from oneshot_rlvr.algo.logprobs import _causal_lm, _head_chunk
from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import cache_keyword
from oneshot_rlvr.rollout.base import Rollouts, TokenCallback
from oneshot_rlvr.rollout.decode import make_cache
from oneshot_rlvr.train.update import autocast


@dataclass
class _Worker:
    """The thread's side: a queue of jobs, run in order until None; the first error stops the rest."""

    jobs: queue.Queue[Callable[[], None] | None] = field(default_factory=queue.Queue)
    error: BaseException | None = None

    def run(self, cfg: TrainConfig, device: torch.device, threads: int) -> None:
        # Intra-op thread counts are per thread with OpenMP; a new thread takes the process-wide value at its first
        # parallel op, so that first (get_num_threads does it), then this thread's own share.
        torch.get_num_threads()
        torch.set_num_threads(threads)
        with torch.no_grad(), autocast(cfg, device):  # (both are per thread too)
            while (job := self.jobs.get()) is not None:
                if self.error is None:
                    try:
                        job()
                    except BaseException as err:  # reported by ReferenceStream.result
                        self.error = err


class _Rows:
    """One decoded batch of rows scored by the reference model, chunk by chunk, with its own KV cache."""

    def __init__(self, model: Any, prompt_ids: Tensor, prompt_mask: Tensor, capacity: int, temperature: float):
        lm = _causal_lm(model)
        self.body, self.head, self.keyword = lm.get_decoder(), lm.get_output_embeddings(), cache_keyword(lm)
        self.ids, self.mask, self.temperature = prompt_ids, prompt_mask, temperature
        self.cache = make_cache(capacity)
        self.parts: list[Tensor] = []  # (rows, chunk) log-probs, in order
        self.pending: Tensor | None = None  # (rows, V) log-probs of the next token, from the last position so far

    def prefill(self) -> None:
        """Each distinct prompt once; its cache rows and its last position's distribution copied to its rows."""
        unique, slots = torch.unique(torch.cat([self.ids, self.mask], dim=1), dim=0, return_inverse=True)
        width = self.ids.shape[1]
        u_ids, u_mask = unique[:, :width], unique[:, width:]
        out = self.body(input_ids=u_ids, attention_mask=u_mask, position_ids=(u_mask.cumsum(-1) - 1).clamp(min=0),
                        use_cache=True, **{self.keyword: self.cache})
        self.cache.batch_select_indices(slots)
        self.pending = self._distribution(out.last_hidden_state[:, -1])[slots]

    def chunk(self, tokens: Tensor, start: int) -> None:
        """Log-probs of response columns [start, start + width) given as `tokens` (rows, width)."""
        assert self.pending is not None
        rows, width = tokens.shape
        first = self.pending.gather(1, tokens[:, :1])  # (rows, 1): predicted by the position before the chunk
        positions = self.mask.sum(dim=1, keepdim=True) + torch.arange(start, start + width)
        attention = torch.cat([self.mask, self.mask.new_ones(rows, start + width)], dim=1)
        hidden = self.body(input_ids=tokens, attention_mask=attention, position_ids=positions, use_cache=True,
                           **{self.keyword: self.cache}).last_hidden_state
        rest, _ = _head_chunk(self.head, hidden[:, :-1].reshape(-1, hidden.shape[-1]), tokens[:, 1:].reshape(-1),
                              self.temperature, with_entropy=False)
        self.parts.append(torch.cat([first.float(), rest.float().view(rows, width - 1)], dim=1))
        self.pending = self._distribution(hidden[:, -1])

    def _distribution(self, hidden: Tensor) -> Tensor:
        logits = self.head(hidden)
        return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)) / self.temperature, -1)

    def logp(self) -> Tensor:
        self.pending = None
        self.cache = None
        return torch.cat(self.parts, dim=1) if self.parts else torch.zeros(self.ids.shape[0], 0)


class ReferenceStream:
    """A `ResponseListener` that scores the sampled responses with the reference model meanwhile (one step).

    Pass it to `HFRolloutEngine.generate(..., listener=...)`, then call `result(rollouts)` for the (N, P + R)
    reference log-probs `score_tokens` would give (0 outside the responses). While a batch is decoded the
    sampling thread keeps `threads - share` intra-op threads and the worker thread gets `share`.
    """

    def __init__(self, model: Any, cfg: TrainConfig, device: torch.device, *, chunk: int = 16,
                 share: int | None = None):
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        self.model, self.cfg, self.device, self.chunk = model, cfg, device, chunk
        self.threads = torch.get_num_threads()  # (read before any worker exists: workers change the global value)
        self.share = share or max(1, self.threads // 2)
        self._batches: list[_Rows] = []
        self._worker = _Worker()
        self._thread: threading.Thread | None = None
        self._finalizer = weakref.finalize(self, self._worker.jobs.put, None)  # ends the thread if never joined

    @contextmanager
    def follow(self, prompt_ids: Tensor, prompt_mask: Tensor) -> Iterator[TokenCallback]:
        rows = _Rows(self.model, prompt_ids.cpu(), prompt_mask.cpu(), prompt_ids.shape[1] + self.cfg.max_new_tokens,
                     self.cfg.temperature)
        self._batches.append(rows)
        sent = 0

        def on_tokens(response: Tensor, length: int, done: bool) -> None:
            nonlocal sent
            if length - sent >= self.chunk or (done and length > sent):
                # Copied now: the decode loop goes on writing into its buffer.
                self._worker.jobs.put(functools.partial(rows.chunk, response[:, sent:length].cpu().clone(), sent))
                sent = length

        if self._thread is None:
            self._thread = threading.Thread(target=self._worker.run, args=(self.cfg, self.device, self.share),
                                            daemon=True, name="reference-stream")
            self._thread.start()
        self._worker.jobs.put(rows.prefill)
        torch.set_num_threads(max(1, self.threads - self.share))
        try:
            yield on_tokens
        finally:
            torch.set_num_threads(self.threads)

    def result(self, rollouts: Rollouts) -> Tensor:
        """(N, P + R) reference log-probs of `rollouts`' responses, aligned with `rollouts.input_ids`."""
        self._finalizer()  # the stop mark, after every job
        if self._thread is not None:
            self._thread.join()
        if self._worker.error is not None:
            raise RlvrError(f"reference scoring failed: {self._worker.error}") from self._worker.error
        parts = [rows.logp() for rows in self._batches]
        width = rollouts.response_ids.shape[1]
        if sum(p.shape[0] for p in parts) != len(rollouts) or any(p.shape[1] > width for p in parts):
            raise RlvrError("reference scoring: the followed batches do not match the rollouts")
        response = torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])
        full = torch.cat([torch.zeros(rollouts.prompt_ids.shape, dtype=torch.float32), response], dim=1)
        return full * rollouts.full_response_mask


__all__ = ["ReferenceStream"]
