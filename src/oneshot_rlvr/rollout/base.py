"""The rollout-engine protocol and the batch of sampled responses it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class SamplingParams:
    """How responses are sampled. temperature 0 means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 512

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class Rollouts:
    """N = B * G sampled responses, prompt-major: row b * G + g is sample g of prompt b.

    prompt_ids / prompt_mask: (N, P), left-padded. response_ids / response_mask: (N, R), right-padded;
    the mask covers every generated token up to and including the stop token.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    finish_reasons: list[str]  # "eos" or "length"
    n: int

    @property
    def input_ids(self) -> torch.Tensor:
        """(N, P + R) prompt and response tokens."""
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    @property
    def full_response_mask(self) -> torch.Tensor:
        """(N, P + R) mask of response positions within `input_ids`."""
        return torch.cat([torch.zeros_like(self.prompt_mask), self.response_mask], dim=1)

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)

    def __len__(self) -> int:
        return len(self.texts)


@runtime_checkable
class RolloutEngine(Protocol):
    """Anything that samples responses: the engines `rollout.engine.make_engine` builds (`FastRolloutEngine`,
    `HFRolloutEngine`), a served model (`rollout.endpoint`), or `rollout.scripted.ScriptedEngine`.

    This is everything the trainer and evaluation use of an engine."""

    max_batch_rows: int
    """The rows one decode batch holds (with continuous batching: its slots); evaluation sends a few batches'
    worth of rows per `generate` call, and the engine schedules them."""

    def generate(
        self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None, first_row: int = 0
    ) -> Rollouts:
        """Sample n responses for each prompt (B prompts -> B * n rows, prompt-major). Row i samples from the
        stream of (seed, first_row + i): a caller holding rows from first_row on of a larger batch (a rank)
        gets the samples the whole batch would have."""
        ...

    def sync(self, model: Any) -> None:
        """Make the engine sample from `model`'s current weights."""
        ...

    def close(self) -> None:
        """Release what the engine holds open (connections, helpers); it is not used afterwards."""
        ...


def concat_rollouts(parts: list[Rollouts], pad_id: int = 0) -> Rollouts:
    """Stack rollouts row-wise, re-padding prompts on the left and responses on the right."""
    if len(parts) == 1:
        return parts[0]
    if len({p.n for p in parts}) != 1:
        raise ValueError("concat_rollouts: parts were sampled with different n")

    def cat(tensors: list[torch.Tensor], value: int, left: bool) -> torch.Tensor:
        width = max(t.shape[1] for t in tensors)
        padded = []
        for t in tensors:
            pad = torch.full((t.shape[0], width - t.shape[1]), value, dtype=t.dtype)
            padded.append(torch.cat([pad, t] if left else [t, pad], dim=1))
        return torch.cat(padded, dim=0)

    return Rollouts(
        prompt_ids=cat([p.prompt_ids for p in parts], pad_id, left=True),
        prompt_mask=cat([p.prompt_mask for p in parts], 0, left=True),
        response_ids=cat([p.response_ids for p in parts], pad_id, left=False),
        response_mask=cat([p.response_mask for p in parts], 0, left=False),
        texts=[t for p in parts for t in p.texts],
        finish_reasons=[r for p in parts for r in p.finish_reasons],
        n=parts[0].n,
    )
