"""The objective variants (GSPO, W-REINFORCE, 80/20, DAPO, one-shot EM, frac_zero_std) on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from oneshot_rlvr.algo import (
    em_loss,
    frac_zero_std,
    high_entropy_mask,
    overlong_penalty,
    policy_loss,
    self_certainty_from_logits,
    sequence_log_ratio,
    truncation_mask,
    weight_positive,
)
from oneshot_rlvr.errors import RlvrError

F64 = torch.float64


def t(rows: list[list[float]] | list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


# --- GSPO: the sequence-level ratio --------------------------------------------------------------

LOGP = t([[-1.0, -2.0, -3.0], [-0.5, -0.5, 9.0]])
OLD = t([[-1.5, -2.0, -2.0], [-1.0, -0.7, 7.0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])


def test_sequence_log_ratio_is_each_rows_mean_token_log_ratio() -> None:
    # row 0: (0.5 + 0 - 1) / 3 = -1/6; row 1: (0.5 + 0.2) / 2 = 0.35 (the masked 2.0 is left out)
    out = sequence_log_ratio(LOGP, OLD, MASK)
    assert out[0].tolist() == pytest.approx([-1 / 6] * 3)
    assert out[1, :2].tolist() == pytest.approx([0.35, 0.35]) and out[1, 2].item() == 0.0


def test_sequence_log_ratio_gradient_is_each_tokens_own() -> None:
    logp = LOGP.clone().requires_grad_(True)
    (sequence_log_ratio(logp, OLD, MASK) * t([[1, 2, 3], [4, 5, 6]])).sum().backward()
    assert logp.grad is not None
    assert logp.grad.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]


def test_policy_loss_sequence_level_clips_the_whole_sequence() -> None:
    # One row, 2 tokens, log-ratios 0.4 and 0.0: per token the first is clipped (e^0.4 > 1.2) and the second
    # is not; at sequence level both carry e^0.2 = 1.2214 > 1.2, so both are clipped to 1.2.
    logp, old = t([[0.4, 0.0]]), t([[0.0, 0.0]])
    mask, adv = torch.ones(1, 2), t([1.0])
    token, tm = policy_loss(logp, old, adv, mask)
    seq, sm = policy_loss(logp, old, adv, mask, ratio_level="sequence")
    assert token.item() == pytest.approx(-(1.2 + 1.0) / 2)
    assert seq.item() == pytest.approx(-1.2)
    assert tm["clip_frac"].item() == pytest.approx(0.5) and sm["clip_frac"].item() == pytest.approx(1.0)
    with pytest.raises(RlvrError, match="ratio_level"):
        policy_loss(logp, old, adv, mask, ratio_level="row")


def test_sequence_level_equals_token_level_when_the_policy_has_not_moved() -> None:
    logp = LOGP.clone().requires_grad_(True)
    loss, _ = policy_loss(logp, LOGP.detach(), t([1.0, -2.0]), MASK, ratio_level="sequence")
    loss.backward()
    assert logp.grad is not None
    ref = LOGP.clone().requires_grad_(True)
    policy_loss(ref, LOGP.detach(), t([1.0, -2.0]), MASK)[0].backward()
    assert torch.equal(logp.grad, ref.grad)


# --- W-REINFORCE, 80/20, DAPO ---------------------------------------------------------------------

def test_weight_positive_scales_only_positive_advantages() -> None:
    assert weight_positive(t([1.5, -0.5, 0.0, 2.0]), 0.1).tolist() == pytest.approx([0.15, -0.5, 0.0, 0.2])
    assert weight_positive(t([1.5, -0.5]), 1.0).tolist() == [1.5, -0.5]
    with pytest.raises(RlvrError, match="pos_weight"):
        weight_positive(t([1.0]), -1.0)


def test_high_entropy_mask_keeps_the_top_fraction_of_valid_tokens() -> None:
    entropy = t([[0.1, 0.9, 0.5, 7.0], [0.3, 0.7, 0.2, 0.4]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])  # the 7.0 is padding and must not count
    # valid entropies sorted: 0.1 0.2 0.3 0.4 0.5 0.7 0.9; the 0.75 quantile: position 4.5 -> (0.5 + 0.7) / 2
    kept = high_entropy_mask(entropy, mask, 0.25)
    assert kept.tolist() == [[False, True, False, False], [False, True, False, False]]
    assert high_entropy_mask(entropy, mask, 1.0).tolist() == mask.bool().tolist()
    assert not high_entropy_mask(entropy, mask, 0.0).any()
    assert not high_entropy_mask(entropy, torch.zeros_like(mask), 0.2).any()


def test_truncation_mask_zeroes_truncated_rows() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert truncation_mask(mask, torch.tensor([False, True])).tolist() == [[1, 1, 0], [0, 0, 0]]
    with pytest.raises(RlvrError, match="truncated"):
        truncation_mask(mask, torch.tensor([True]))


def test_overlong_penalty_is_dapos_linear_ramp() -> None:
    # max_len 10, buffer 4: no penalty up to 6 tokens, then -(len - 6) / 4, -1 at 10; times coef 0.5
    out = overlong_penalty(torch.tensor([3, 6, 7, 8, 10]), 10, 4, 0.5)
    assert out.tolist() == pytest.approx([0.0, 0.0, -0.125, -0.25, -0.5])
    with pytest.raises(RlvrError, match="buffer"):
        overlong_penalty(torch.tensor([1]), 10, 0)


# --- one-shot EM, self-certainty, frac_zero_std ---------------------------------------------------

def test_em_loss_is_entropy_plus_kl_term_only() -> None:
    assert em_loss(t(2.0), t(3.0), kl_coef=0.1).item() == pytest.approx(2.3)
    assert em_loss(t(2.0), t(3.0)).item() == pytest.approx(2.0)


def test_self_certainty_by_hand() -> None:
    # p = (1/2, 1/4, 1/4): KL(U || p) = -log 3 - (log 1/2 + 2 log 1/4) / 3 = -log 3 + (5/3) log 2
    logits = torch.log(t([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    out = self_certainty_from_logits(logits)
    assert out[0].item() == pytest.approx(-math.log(3) + 5 / 3 * math.log(2))
    assert out[1].item() == pytest.approx(0.0, abs=1e-12)


def test_frac_zero_std_counts_groups_with_one_reward_value() -> None:
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.25]])
    assert frac_zero_std(rewards) == pytest.approx(0.5)
    with pytest.raises(RlvrError, match="frac_zero_std"):
        frac_zero_std(torch.ones(3))
