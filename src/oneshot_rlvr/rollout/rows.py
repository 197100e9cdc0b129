"""What both engines do around their decode loops: prompt rows in, `Rollouts` out.

Rows are prompt-major (row b * n + g is sample g of prompt b). Row i of a call draws from the random stream of
(seed, first_row + i) (`oneshot_rlvr.rollout.streams`), so a sample depends on neither the batch it was
scheduled in nor the engine's loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from oneshot_rlvr.models.stops import resolve_stop
from oneshot_rlvr.rollout.base import Rollouts, SamplingParams, concat_rollouts


def stop_and_pad(stop: str | Sequence[int], tokenizer: Any, model: Any) -> tuple[list[int], int]:
    """The token ids that end a response, and the id that pads (the tokenizer's pad, else the first stop)."""
    stop_ids = resolve_stop(stop, tokenizer, model)
    return stop_ids, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]


def stream_seed(seed: int | None) -> int:
    """The rollout's stream seed: `seed`, or one drawn from torch's generator (itself seeded by `seed`)."""
    if seed is not None:
        torch.manual_seed(seed)  # (what else samples, e.g. the Hugging Face generate, follows the seed too)
        return seed
    return int(torch.randint(0, 2**62, ()))


def encode(tokenizer: Any, rows: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (N, P) ids and mask, so that every row's next token is in the last column, whatever the
    tokenizer was configured with."""
    tokenizer.padding_side = "left"
    enc = tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def in_chunks(rows: list[str], size: int, run: Callable[[list[str], int], Rollouts], pad_id: int) -> Rollouts:
    """`run(chunk, first)` on consecutive chunks of at most `size` rows (`first`: the chunk's first row), joined."""
    parts = [run(rows[i : i + size], i) for i in range(0, len(rows), size)]
    return concat_rollouts(parts, pad_id=pad_id)


def row_draws(seed: int, first_row: int, rows: int, sampling: SamplingParams,
              device: torch.device) -> torch.Tensor | None:
    """(rows, R) uniforms of rows first_row.. of the stream `seed` (None when greedy: nothing is drawn)."""
    from oneshot_rlvr.rollout.streams import row_uniforms

    if sampling.greedy:
        return None
    return row_uniforms(seed, range(first_row, first_row + rows), sampling.max_new_tokens, device)


def to_rollouts(tokenizer: Any, stop_ids: list[int], pad_id: int, ids: torch.Tensor, mask: torch.Tensor,
                resp: torch.Tensor) -> Rollouts:
    """Rollouts of n=1 from the decode loop's (N, R) tokens: each response kept up to and including its first
    stop token (finish reason "eos"), or whole when it has none ("length")."""
    stops = torch.tensor(stop_ids, device=resp.device)
    is_stop = torch.isin(resp, stops)
    before_stop = (is_stop.cumsum(dim=1) - is_stop.long()) == 0
    resp_mask = before_stop.long()
    lengths = resp_mask.sum(dim=1)
    finished = (is_stop & before_stop).any(dim=1)
    resp = torch.where(resp_mask.bool(), resp, torch.full_like(resp, pad_id))
    texts = []
    for row, length, done in zip(resp.tolist(), lengths.tolist(), finished.tolist(), strict=True):
        body = row[: length - 1] if done else row[:length]
        texts.append(tokenizer.decode(body, skip_special_tokens=True))
    reasons = ["eos" if d else "length" for d in finished.tolist()]
    return Rollouts(ids.cpu(), mask.cpu(), resp.cpu(), resp_mask.cpu(), texts, reasons, n=1)


def trim_after_last_stop(resp: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """`resp` without the columns after the latest first stop (or all of them, when some row never stopped)."""
    is_stop = torch.isin(resp, torch.tensor(stop_ids, device=resp.device))
    ends = torch.where(is_stop.any(1), is_stop.int().argmax(1) + 1, resp.shape[1])
    return resp[:, : int(ends.max())] if len(resp) else resp


def shared_rows(rows: list[str], ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first row of each distinct prompt, each row's prompt slot), or None when no prompt repeats."""
    first_row: dict[str, int] = {}
    for i, text in enumerate(rows):
        first_row.setdefault(text, i)
    if len(first_row) == len(rows) or ids.shape[1] < 2:
        return None  # nothing shared: prefilling row by row is as good
    slot = {text: k for k, text in enumerate(first_row)}
    return (torch.tensor(list(first_row.values()), device=ids.device),
            torch.tensor([slot[t] for t in rows], device=ids.device))


__all__ = ["encode", "in_chunks", "row_draws", "shared_rows", "stop_and_pad", "stream_seed", "to_rollouts",
           "trim_after_last_stop"]
