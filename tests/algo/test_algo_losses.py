"""Loss terms and aggregation against values computed by hand, gradchecks and properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oneshot_rlvr.algo import (
    AGG_MODES,
    aggregate,
    entropy_from_logits,
    kl_penalty,
    policy_loss,
    total_loss,
    value_loss,
)
from oneshot_rlvr.errors import RlvrError

F64 = torch.float64


def t(rows: list[list[float]] | list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


# --- aggregate -------------------------------------------------------------------------------------

# Row 0: 4 tokens summing to 10; row 1: 2 tokens summing to 30; row 2: fully masked (junk values).
VALUES = t([[1, 2, 3, 4], [10, 20, 99, 99], [5, 5, 5, 5]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 40 / 6),  # (10 + 30) / 6 tokens
        ("seq-mean-token-mean", (2.5 + 15) / 2),  # row means 10/4 and 30/2
        ("seq-mean-token-sum", (10 + 30) / 2),
        ("seq-mean-token-sum-norm", (10 / 4 + 30 / 4) / 2),  # divided by T = 4
    ],
)
def test_aggregate_by_hand(mode: str, expected: float) -> None:
    assert aggregate(VALUES, MASK, mode).item() == pytest.approx(expected)


def test_aggregate_normalisers_replace_local_counts() -> None:
    assert aggregate(VALUES, MASK, "token-mean", num_tokens=10).item() == pytest.approx(4.0)
    assert aggregate(VALUES, MASK, "seq-mean-token-sum", num_seqs=8).item() == pytest.approx(5.0)
    assert aggregate(VALUES, MASK, "seq-mean-token-mean", num_seqs=5).item() == pytest.approx(3.5)
    assert aggregate(VALUES, MASK, "seq-mean-token-sum-norm", max_len=8).item() == pytest.approx(2.5)


def test_aggregate_ignores_nan_and_inf_under_the_mask() -> None:
    inf_slot = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    for mode in AGG_MODES:
        values = VALUES.clone().requires_grad_(True)
        junk = torch.where(MASK.bool(), values, torch.tensor(float("nan"), dtype=F64))
        out = aggregate(junk.masked_fill(inf_slot, math.inf), MASK, mode)
        (grad,) = torch.autograd.grad(out, values)
        assert torch.isfinite(out) and torch.isfinite(grad).all()
        assert out.item() == pytest.approx(aggregate(VALUES, MASK, mode).item())
        assert (grad[~MASK.bool()] == 0).all()


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregate_all_masked_is_zero_with_zero_grad(mode: str) -> None:
    values = torch.ones(2, 3, dtype=F64, requires_grad=True)
    out = aggregate(values, torch.zeros(2, 3), mode)
    out.backward()
    assert out.item() == 0.0
    assert values.grad is not None and (values.grad == 0).all()


def test_aggregate_bad_input_raises() -> None:
    with pytest.raises(RlvrError, match="aggregation mode"):
        aggregate(VALUES, MASK, "mean")
    with pytest.raises(RlvrError, match="num_tokens"):
        aggregate(VALUES, MASK, "token-mean", num_tokens=0)
    with pytest.raises(RlvrError, match=r"\(B, T\)"):
        aggregate(VALUES, MASK[:, :3], "token-mean")


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 7),
    st.data(),
)
def test_aggregation_modes_agree_when_lengths_are_equal(b: int, width: int, data: st.DataObject) -> None:
    length = data.draw(st.integers(1, width))
    values = t(data.draw(st.lists(st.lists(st.floats(-5, 5), min_size=width, max_size=width), min_size=b, max_size=b)))
    mask = torch.zeros(b, width)
    mask[:, :length] = 1
    token_mean = aggregate(values, mask, "token-mean")
    torch.testing.assert_close(aggregate(values, mask, "seq-mean-token-mean"), token_mean)
    torch.testing.assert_close(aggregate(values, mask, "seq-mean-token-sum"), length * token_mean)
    torch.testing.assert_close(aggregate(values, mask, "seq-mean-token-sum-norm", max_len=length), token_mean)
    full = torch.ones(b, width)
    # With full masks the Dr. GRPO constant is T itself, and all four modes coincide up to that scale.
    torch.testing.assert_close(
        aggregate(values, full, "seq-mean-token-sum-norm"), aggregate(values, full, "token-mean")
    )


@pytest.mark.parametrize("mode", AGG_MODES)
def test_aggregate_gradcheck(mode: str) -> None:
    values = torch.randn(3, 5, dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert torch.autograd.gradcheck(lambda v: aggregate(v, mask, mode), (values,))


# --- policy_loss -----------------------------------------------------------------------------------


def _policy_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # Ratios 1.5, 0.5, 1.1 and a masked slot; advantages +1, -1, -1 (and 2 on the masked slot).
    old_logp = t([[-1.0, -2.0, -0.5, -3.0]])
    logp = old_logp + t([[math.log(1.5), math.log(0.5), math.log(1.1), 0.0]])
    adv = t([[1.0, -1.0, -1.0, 2.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    return logp.requires_grad_(True), old_logp, adv, mask


def test_policy_loss_by_hand() -> None:
    logp, old_logp, adv, mask = _policy_case()
    loss, metrics = policy_loss(logp, old_logp, adv, mask)
    # Token 0: max(-1.5, -1.2) = -1.2 (clipped high). Token 1: max(0.5, 0.8) = 0.8 (clipped low).
    # Token 2: max(1.1, 1.1) = 1.1 (inside the clip range). Mean over 3 tokens.
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 1.1) / 3)
    loss.backward()
    assert logp.grad is not None
    # Only the unclipped token passes gradient: d(-A r)/dlogp = -A r / 3 = 1.1 / 3.
    torch.testing.assert_close(logp.grad, t([[0.0, 0.0, 1.1 / 3, 0.0]]))
    assert metrics["clip_frac"].item() == pytest.approx(2 / 3)
    assert metrics["clip_frac_high"].item() == pytest.approx(1 / 3)
    assert metrics["clip_frac_low"].item() == pytest.approx(1 / 3)
    assert metrics["ratio_mean"].item() == pytest.approx(3.1 / 3)
    assert metrics["ratio_min"].item() == pytest.approx(0.5)
    assert metrics["ratio_max"].item() == pytest.approx(1.5)
    log_r = [math.log(1.5), math.log(0.5), math.log(1.1)]
    assert metrics["approx_kl"].item() == pytest.approx(-sum(log_r) / 3)
    assert metrics["approx_kl_k3"].item() == pytest.approx(sum(math.exp(-x) + x - 1 for x in log_r) / 3)
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())


def test_policy_loss_clip_higher_and_pessimistic_side() -> None:
    logp, old_logp, adv, mask = _policy_case()
    loss, _ = policy_loss(logp, old_logp, adv, mask, clip_high=0.28)
    assert loss.item() == pytest.approx((-1.28 + 0.8 + 1.1) / 3)
    # A > 0 with r = 0.5 < 1 - clip: the unclipped -0.5 is the larger (no clipping on that side).
    loss, metrics = policy_loss(t([[math.log(0.5)]]), t([[0.0]]), t([[1.0]]), torch.ones(1, 1))
    assert loss.item() == pytest.approx(-0.5)
    assert metrics["clip_frac"].item() == 0.0


def test_policy_loss_sequence_advantage_broadcasts() -> None:
    logp, old_logp, _, mask = _policy_case()
    seq_adv = t([-0.7])
    a, _ = policy_loss(logp, old_logp, seq_adv, mask)
    b, _ = policy_loss(logp, old_logp, seq_adv[:, None].expand(1, 4), mask)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(policy_loss(logp, old_logp, seq_adv[:, None], mask)[0], b)
    with pytest.raises(RlvrError, match="adv"):
        policy_loss(logp, old_logp, t([1.0, 2.0]), mask)


def test_policy_loss_one_token_responses_and_masked_rows() -> None:
    logp = t([[0.0, -0.1], [0.0, 0.2], [5.0, 5.0]]).requires_grad_(True)
    old = t([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    adv = t([1.0, 1.0, 100.0])
    mask = torch.tensor([[0, 1], [0, 1], [0, 0]])  # two one-token responses and an empty row
    for mode in AGG_MODES:
        loss, metrics = policy_loss(logp, old, adv, mask, agg=mode, max_len=1)
        # Tokens: r = e^-0.1 (unclipped, -0.904837) and r = e^0.2 = 1.2214 (clipped: -1.2).
        assert loss.item() == pytest.approx((-math.exp(-0.1) - 1.2) / 2)
        assert metrics["ratio_max"].item() == pytest.approx(math.exp(0.2))


def test_policy_loss_extreme_log_ratios_stay_finite() -> None:
    logp = t([[1000.0, -1000.0, 50.0, 0.0], [-1e30, 1e30, 0.0, float("nan")]]).requires_grad_(True)
    old = t([[0.0, 0.0, -50.0, float("-inf")], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    for sign in (1.0, -1.0):
        adv = t([[sign, sign, -sign, float("inf")], [sign, -sign, sign, 1.0]])
        for mode in AGG_MODES:
            loss, metrics = policy_loss(logp, old, adv, mask, agg=mode)
            (grad,) = torch.autograd.grad(loss, logp)
            assert torch.isfinite(loss) and torch.isfinite(grad).all()
            assert all(torch.isfinite(v) for v in metrics.values())


def test_policy_loss_empty_batch_reports_an_unchanged_policy() -> None:
    logp, old_logp, adv, _ = _policy_case()
    loss, metrics = policy_loss(logp, old_logp, adv, torch.zeros(1, 4))
    assert loss.item() == 0.0
    assert metrics["ratio_min"].item() == metrics["ratio_max"].item() == metrics["ratio_mean"].item() == 1.0
    assert metrics["clip_frac"].item() == 0.0 and metrics["approx_kl"].item() == 0.0


@pytest.mark.parametrize("mode", AGG_MODES)
def test_policy_loss_gradcheck(mode: str) -> None:
    gen = torch.Generator().manual_seed(1)
    old = -torch.rand(3, 5, generator=gen, dtype=F64) * 3
    # Log-ratios well inside or outside the clip range, away from the kinks at log(0.8), log(1.2).
    offsets = t([[0.0, 0.1, -0.1, 0.5, -0.5], [0.05, 0.7, -0.7, 0.0, 0.0], [0.3, -0.3, 0.0, 0.0, 0.0]])
    logp = (old + offsets).requires_grad_(True)
    adv = torch.randn(3, 5, generator=gen, dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])

    def fn(lp: torch.Tensor) -> torch.Tensor:
        return policy_loss(lp, old, adv, mask, agg=mode, clip_low=0.2, clip_high=0.28)[0]

    assert torch.autograd.gradcheck(fn, (logp,))


# --- kl_penalty ------------------------------------------------------------------------------------


def test_kl_penalty_by_hand() -> None:
    logp, ref = t([-1.0, -2.0]), t([-2.0, -1.0])
    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), t([1.0, -1.0]))
    torch.testing.assert_close(kl_penalty(logp, ref, "k2"), t([0.5, 0.5]))
    # k3 with d = ref - logp: exp(d) - d - 1 -> d = -1: e^-1; d = 1: e - 2.
    torch.testing.assert_close(kl_penalty(logp, ref, "k3"), t([math.exp(-1), math.e - 2]))
    torch.testing.assert_close(kl_penalty(logp, ref), kl_penalty(logp, ref, "k3"))
    with pytest.raises(RlvrError, match="kl kind"):
        kl_penalty(logp, ref, "k4")


def test_kl_k3_is_clamped_and_finite_at_extremes() -> None:
    logp = t([0.0, 0.0, -1000.0, 1000.0, -2.5]).requires_grad_(True)
    ref = t([50.0, -50.0, 0.0, 0.0, -2.5])
    kl = kl_penalty(logp, ref, "k3")
    torch.testing.assert_close(kl, t([10.0, 10.0, 10.0, 10.0, 0.0]))
    (grad,) = torch.autograd.grad(kl.sum(), logp)
    assert torch.isfinite(grad).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-60, 0), st.floats(-60, 0)), min_size=1, max_size=20))
def test_k3_is_non_negative(pairs: list[tuple[float, float]]) -> None:
    logp, ref = t([p for p, _ in pairs]), t([r for _, r in pairs])
    kl = kl_penalty(logp, ref, "k3")
    # exp(x) - x - 1 >= 0 exactly, but evaluated in floats it cancels: for x near 0 its terms are near 1 and the
    # result can round to a few ulps of them below zero (-1.1e-16 in float64 for some x of order 1e-7). Beyond that, a
    # negative value is a wrong sign.
    x = ref - logp
    rounding = 4 * torch.finfo(F64).eps * (torch.exp(x) + x.abs() + 1)
    assert (kl >= -rounding).all() and (kl <= 10).all()
    assert (kl_penalty(logp, ref, "k2") >= 0).all()


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_kl_penalty_gradcheck(kind: str) -> None:
    gen = torch.Generator().manual_seed(2)
    logp = (-torch.rand(4, 3, generator=gen, dtype=F64) * 4).requires_grad_(True)
    ref = (-torch.rand(4, 3, generator=gen, dtype=F64) * 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: kl_penalty(a, b, kind), (logp, ref))


# --- entropy ---------------------------------------------------------------------------------------


def test_entropy_by_hand() -> None:
    # softmax([0, log 3]) = [1/4, 3/4].
    h = entropy_from_logits(t([[0.0, math.log(3)], [1000.0, 1000.0], [1000.0, -1000.0]]))
    expected = t([-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), math.log(2), 0.0])
    torch.testing.assert_close(h, expected)


def test_entropy_upcasts_half_precision() -> None:
    h = entropy_from_logits(torch.zeros(2, 8, dtype=torch.bfloat16))
    assert h.dtype == torch.float32
    torch.testing.assert_close(h, torch.full((2,), math.log(8)))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 500), st.floats(-1e4, 1e4))
def test_entropy_of_uniform_logits_is_log_v(vocab: int, level: float) -> None:
    h = entropy_from_logits(torch.full((3, vocab), level, dtype=F64))
    torch.testing.assert_close(h, torch.full((3,), math.log(vocab), dtype=F64))


def test_entropy_gradcheck() -> None:
    logits = torch.randn(2, 3, 7, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(entropy_from_logits, (logits,))


# --- total_loss and value_loss ---------------------------------------------------------------------


def test_total_loss_by_hand() -> None:
    pg, ent, kl = t(2.0), t(3.0), t(5.0)
    assert total_loss(pg, ent, kl, entropy_coef=0.1, kl_coef=0.01).item() == pytest.approx(2 - 0.3 + 0.05)
    assert total_loss(pg, ent, kl).item() == pytest.approx(2.0)
    assert total_loss(pg, ent, kl, pg_coef=0.0, entropy_coef=1.0).item() == pytest.approx(-3.0)


def test_positive_entropy_coef_raises_entropy() -> None:
    # The entropy-only ablation (pg_coef = 0): gradient descent on the total loss must raise entropy.
    logits = t([[4.0, 0.0, -1.0, 0.5]]).requires_grad_(True)
    before = entropy_from_logits(logits).item()
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(5):
        ent = aggregate(entropy_from_logits(logits)[:, None], torch.ones(1, 1), "token-mean")
        loss = total_loss(t(0.0), ent, t(0.0), pg_coef=0.0, entropy_coef=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert entropy_from_logits(logits).item() > before + 0.1


def test_value_loss_by_hand() -> None:
    values, old = t([[1.0, 1.2, 7.0]]), t([[0.8, 1.0, 0.0]])
    returns, mask = t([[0.0, 1.3, 0.0]]), torch.tensor([[1, 1, 0]])
    # Token 0: err 1.0, clipped v 0.9 -> 0.81; max 1.0. Token 1: err 0.01, clipped v 1.1 -> 0.04.
    loss, metrics = value_loss(values, old, returns, mask, clip=0.1)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.04) / 2)
    assert metrics["value_clip_frac"].item() == pytest.approx(0.5)
    assert metrics["value_mean"].item() == pytest.approx(1.1)
    assert metrics["value_error"].item() == pytest.approx((1.0 + 0.01) / 2)
    loss, _ = value_loss(values, old, returns, mask, clip=None)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.01) / 2)


def test_value_loss_gradcheck() -> None:
    values = t([[1.0, 1.2, 0.3], [0.05, -0.4, 2.0]]).requires_grad_(True)
    old, returns = t([[0.8, 1.0, 0.35], [0.0, 0.0, 0.0]]), t([[0.0, 1.3, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert torch.autograd.gradcheck(lambda v: value_loss(v, old, returns, mask, clip=0.1)[0], (values,))
