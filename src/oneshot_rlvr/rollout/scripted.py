"""A rollout engine that answers from a script instead of sampling a model.

It stands in for the real engine wherever the responses must be known in advance: the trainer's reward
bookkeeping (which response earned which reward, for which problem), evaluation metrics, dry runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.rollout.base import Rollouts, SamplingParams

TRUNCATED = "..."
"""A scripted response ending with this was cut at the length limit (finish reason `length`, no stop token)."""


class ScriptedEngine:
    """Sample g of a prompt is `script[key][g % len(script[key])]`, for the first key found in the prompt.

    With a tokenizer, prompt and response ids are the texts' real tokens (plus the stop token after a
    finished response), so a trainer can score them with its model; without one, every word is one token
    of id 1. `prompts` records each `generate` call's prompts, in order, and `calls` its shape:
    (number of prompts, n, seed).
    """

    def __init__(self, script: Mapping[str, Sequence[str]], tokenizer: Any = None, max_batch_rows: int = 256):
        self.script = dict(script)
        self.tokenizer = tokenizer
        self.max_batch_rows = max_batch_rows
        self.prompts: list[list[str]] = []
        self.calls: list[tuple[int, int, int | None]] = []
        self.first_rows: list[int] = []

    def responses(self, prompt: str, n: int) -> list[str]:
        key = next((k for k in self.script if k in prompt), None)
        if key is None:
            raise RlvrError(f"scripted engine: no script entry matches the prompt {prompt[-80:]!r}")
        answers = self.script[key]
        return [answers[g % len(answers)] for g in range(n)]

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None,
                 first_row: int = 0) -> Rollouts:
        """The script's responses; `seed` and `first_row` are recorded, not used (the script has no randomness)."""
        self.prompts.append(list(prompts))
        self.calls.append((len(prompts), n, seed))
        self.first_rows.append(first_row)
        texts = [t for p in prompts for t in self.responses(p, n)]
        finished = [not t.endswith(TRUNCATED) for t in texts]
        prompt_ids = [self._ids(p) for p in prompts for _ in range(n)]
        response_ids = [self._ids(t) + (self._stop() if done else []) for t, done in zip(texts, finished, strict=True)]
        p_ids, p_mask = _pad(prompt_ids, self._pad_id(), left=True)
        r_ids, r_mask = _pad(response_ids, self._pad_id(), left=False)
        reasons = ["eos" if done else "length" for done in finished]
        return Rollouts(p_ids, p_mask, r_ids, r_mask, texts, reasons, n=n)

    def sync(self, model: Any) -> None:
        """Nothing to do: the script does not depend on the weights."""

    def close(self) -> None:
        """Nothing to release."""

    def _ids(self, text: str) -> list[int]:
        if self.tokenizer is None:
            return [1] * len(text.split())
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _stop(self) -> list[int]:
        if self.tokenizer is None:
            return [1]
        eos = self.tokenizer.eos_token_id
        return [] if eos is None else [int(eos)]

    def _pad_id(self) -> int:
        pad = None if self.tokenizer is None else self.tokenizer.pad_token_id
        return 0 if pad is None else int(pad)


def _pad(rows: list[list[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, width) ids and mask, padded on the left (prompts) or the right (responses)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask
