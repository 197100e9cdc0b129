"""The training set of a run and its position: which rows each step trains on, and the
per-example accuracy history (the `acc_step_500.json` format: example id -> accuracy per epoch)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.data import Problem, expand_to_batch, load_problems
from oneshot_rlvr.data.problems import BadRowError
from oneshot_rlvr.errors import RlvrError


def training_problems(cfg: TrainConfig) -> list[Problem]:
    """The examples named by the config, repeated to the batch size when fewer than a batch."""
    fields: dict[str, str | None] = {"question_field": cfg.question_field or None,
                                     "answer_field": cfg.answer_field or None}
    if cfg.problem:
        base = [Problem(id="0", prompt=cfg.problem, answer=cfg.answer.strip(), source="inline")]
    elif cfg.pool:
        # Only the chosen examples must be usable: a pool may hold rows we never train on.
        pool = load_problems(cfg.pool, question_field=fields["question_field"], answer_field=fields["answer_field"],
                             skip_bad_rows=True)
        by_id = {p.id: p for p in pool}
        wanted = [i.strip() for i in cfg.index.split(",") if i.strip()]
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise RlvrError(f"{cfg.pool}: no usable example with id {', '.join(missing)} (setting index)")
        base = [by_id[i] for i in wanted]
    else:
        try:
            base = load_problems(cfg.train_file, question_field=fields["question_field"],
                                 answer_field=fields["answer_field"], skip_bad_rows=cfg.skip_bad_rows)
        except BadRowError as err:  # (only a row without question or answer: skipping cannot fix the rest)
            raise RlvrError(f"{err} (setting skip_bad_rows=true leaves such rows out)") from None
    return expand_to_batch(base, cfg.batch_size)


@dataclass
class DataPosition:
    """Where the next batch starts: epoch number and offset into that epoch's order."""

    epoch: int = 0
    offset: int = 0


@dataclass
class EpochSampler:
    """Seeded per-epoch shuffles of the training rows; a batch may run across an epoch boundary."""

    size: int
    seed: int
    position: DataPosition = field(default_factory=DataPosition)

    def order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def next_batch(self, batch_size: int) -> list[tuple[int, int]]:
        """(row index, epoch) pairs of the next batch."""
        rows: list[tuple[int, int]] = []
        while len(rows) < batch_size:
            order = self.order(self.position.epoch)
            take = order[self.position.offset : self.position.offset + batch_size - len(rows)]
            rows.extend((r, self.position.epoch) for r in take)
            self.position.offset += len(take)
            if self.position.offset >= self.size:
                self.position = DataPosition(self.position.epoch + 1, 0)
        return rows


@dataclass
class History:
    """Per-example accuracy, one value per finished epoch (mean over every sample of that example)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    pending: dict[int, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, example_id: str, epoch: int, correct: float, total: float) -> None:
        acc = self.pending[epoch].setdefault(example_id, [0.0, 0.0])
        acc[0] += correct
        acc[1] += total

    def close_epochs_before(self, epoch: int) -> None:
        for e in sorted(k for k in self.pending if k < epoch):
            for example_id, (correct, total) in self.pending.pop(e).items():
                self.values.setdefault(example_id, []).append(correct / total if total else 0.0)

    def state(self) -> dict[str, Any]:
        return {"values": self.values, "pending": {k: dict(v) for k, v in self.pending.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> History:
        h = cls(values={k: list(v) for k, v in state["values"].items()})
        for epoch, entries in state["pending"].items():
            h.pending[int(epoch)] = {k: list(v) for k, v in entries.items()}
        return h
