"""Gradient accumulation: micro-batch gradients must add up to the mini-batch gradient, in every mode.

A toy policy (per-token features @ W -> logits) is scored on a mini-batch of 7 responses of unequal
lengths (one single-token response, one empty row). The full loss - clipped policy term, entropy bonus,
k3 KL - is differentiated once on the whole mini-batch, and once per micro-batch, each micro-batch
padded only to its own longest response, as a trainer does. With the mini-batch normalisers
(num_tokens, num_seqs, max_len) the summed micro-batch gradients equal the full one to float64
precision; the naive recipe (each micro-batch normalised by its own counts, then averaged) must not.
"""

from __future__ import annotations

import pytest
import torch

from oneshot_rlvr.algo import AGG_MODES, aggregate, entropy_from_logits, kl_penalty, policy_loss, total_loss

F64 = torch.float64
LENGTHS = [9, 3, 1, 0, 6, 2, 8]
B, T, D, V = len(LENGTHS), max(LENGTHS), 5, 11
MICRO = [[0, 1, 2], [3, 4], [5, 6]]  # unequal sizes, and unequal token counts


def make_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(B, T, D, generator=gen, dtype=F64)
    targets = torch.randint(0, V, (B, T), generator=gen)
    weight = torch.randn(D, V, generator=gen, dtype=F64)

    def logp_of(w: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(feats @ w, dim=-1).gather(-1, targets[..., None]).squeeze(-1)

    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).to(F64)
    return {
        "feats": feats,
        "targets": targets,
        "weight": weight,
        # The sampling policy and the reference differ enough from W that some ratios are clipped.
        "old_logp": logp_of(weight + 0.3 * torch.randn(D, V, generator=gen, dtype=F64)),
        "ref_logp": logp_of(weight + 0.5 * torch.randn(D, V, generator=gen, dtype=F64)),
        "adv": torch.randn(B, generator=gen, dtype=F64),
        "mask": mask,
    }


def loss_on(
    batch: dict[str, torch.Tensor], weight: torch.Tensor, rows: list[int], mode: str, **norms: float
) -> torch.Tensor:
    """The trainer's loss on `rows`, padded to their own longest response."""
    width = max(1, max(LENGTHS[r] for r in rows))
    logits = batch["feats"][rows, :width] @ weight
    logp = torch.log_softmax(logits, dim=-1).gather(-1, batch["targets"][rows, :width, None]).squeeze(-1)
    mask = batch["mask"][rows, :width]
    pg, _ = policy_loss(
        logp, batch["old_logp"][rows, :width], batch["adv"][rows], mask, clip_high=0.28, agg=mode, **norms
    )
    entropy = aggregate(entropy_from_logits(logits), mask, mode, **norms)
    kl = aggregate(kl_penalty(logp, batch["ref_logp"][rows, :width]), mask, mode, **norms)
    return total_loss(pg, entropy, kl, entropy_coef=0.01, kl_coef=0.05)


def grad_of(batch: dict[str, torch.Tensor], micro: list[list[int]], mode: str, **norms: float) -> torch.Tensor:
    """Sum of the micro-batch gradients with respect to W (one backward per micro-batch)."""
    weight = batch["weight"].clone().requires_grad_(True)
    for rows in micro:
        loss_on(batch, weight, rows, mode, **norms).backward()
    assert weight.grad is not None
    return weight.grad


def global_norms(mask: torch.Tensor) -> dict[str, float]:
    return {
        "num_tokens": float(mask.sum()),
        "num_seqs": float((mask.sum(dim=1) > 0).sum()),
        "max_len": float(T),
    }


@pytest.mark.parametrize("mode", AGG_MODES)
def test_accumulated_micro_batch_grads_equal_full_batch_grad(mode: str) -> None:
    batch = make_batch()
    full = grad_of(batch, [list(range(B))], mode, max_len=T)
    accumulated = grad_of(batch, MICRO, mode, **global_norms(batch["mask"]))
    torch.testing.assert_close(accumulated, full, rtol=1e-10, atol=1e-12)

    # The naive recipe - each micro-batch normalised by its own counts and width, then averaged - is
    # wrong here, so this test would catch a missing normaliser.
    weight = batch["weight"].clone().requires_grad_(True)
    for rows in MICRO:
        (loss_on(batch, weight, rows, mode) / len(MICRO)).backward()
    assert weight.grad is not None
    assert (weight.grad - full).norm() > 1e-3 * full.norm()


def test_clipping_is_exercised() -> None:
    batch = make_batch()
    logp = torch.log_softmax(batch["feats"] @ batch["weight"], dim=-1)
    logp = logp.gather(-1, batch["targets"][..., None]).squeeze(-1)
    _, metrics = policy_loss(logp, batch["old_logp"], batch["adv"], batch["mask"], clip_high=0.28)
    assert 0.05 < metrics["clip_frac"].item() < 0.95


@pytest.mark.parametrize("mode", AGG_MODES)
def test_data_parallel_average_of_rank_grads_equals_full_grad(mode: str) -> None:
    """Two ranks, two micro-batches each; DDP averages rank gradients, so each loss is scaled by 2."""
    batch = make_batch()
    full = grad_of(batch, [list(range(B))], mode, max_len=T)
    ranks = [[[0, 1], [2, 3]], [[4], [5, 6]]]
    world = len(ranks)
    norms = global_norms(batch["mask"])
    rank_grads = []
    for micro in ranks:
        weight = batch["weight"].clone().requires_grad_(True)
        for rows in micro:
            (world * loss_on(batch, weight, rows, mode, **norms)).backward()
        assert weight.grad is not None
        rank_grads.append(weight.grad)
    torch.testing.assert_close(torch.stack(rank_grads).mean(dim=0), full, rtol=1e-10, atol=1e-12)
