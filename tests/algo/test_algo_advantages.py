"""Advantage estimators against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oneshot_rlvr.algo import (
    dr_grpo_advantages,
    gae_advantages,
    grpo_advantages,
    masked_whiten,
    rloo_advantages,
)
from oneshot_rlvr.errors import RlvrError

EPS = 1e-6


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_group_norm_one_correct_of_four() -> None:
    # mean 0.25; unbiased var = (0.75^2 + 3 * 0.25^2) / 3 = 0.25, std 0.5.
    adv = grpo_advantages(t([[1, 0, 0, 0]]))
    expected = t([[0.75, -0.25, -0.25, -0.25]]) / (0.5 + EPS)
    torch.testing.assert_close(adv, expected)


def test_group_norm_two_of_four_uses_unbiased_std() -> None:
    # mean 0.5; unbiased var = 4 * 0.25 / 3 = 1/3 (the biased std 0.5 would give +-1 instead).
    adv = grpo_advantages(t([[1, 1, 0, 0]]))
    std = math.sqrt(1 / 3)
    expected = t([[0.5, 0.5, -0.5, -0.5]]) / (std + EPS)
    torch.testing.assert_close(adv, expected)
    assert abs(adv[0, 0].item() - 0.8660254) < 1e-5


def test_each_row_is_its_own_group() -> None:
    adv = grpo_advantages(t([[1, 0, 0, 0], [0, 0, 0, 1]]))
    expected = t([[0.75, -0.25, -0.25, -0.25], [-0.25, -0.25, -0.25, 0.75]]) / (0.5 + EPS)
    torch.testing.assert_close(adv, expected)


@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_all_equal_rewards_give_zero(norm: str) -> None:
    adv = grpo_advantages(t([[1, 1, 1, 1], [0, 0, 0, 0]]), norm=norm)
    assert torch.equal(adv, torch.zeros(2, 4, dtype=torch.float64))


def test_batch_norm_divides_by_std_over_all_rewards() -> None:
    rewards = t([[1, 0, 0, 0], [1, 1, 1, 1]])
    # Centred by group: [0.75, -0.25, -0.25, -0.25] and zeros. Std of the 8 rewards (five 1s, three
    # 0s): mean 0.625, unbiased var = (5 * 0.375^2 + 3 * 0.625^2) / 7 = 1.875 / 7.
    std = math.sqrt(1.875 / 7)
    expected = t([[0.75, -0.25, -0.25, -0.25], [0, 0, 0, 0]]) / (std + EPS)
    torch.testing.assert_close(grpo_advantages(rewards, norm="batch"), expected)
    assert abs(expected[0, 0].item() - 1.449138) < 1e-5


def test_none_and_dr_grpo_only_remove_the_mean() -> None:
    rewards = t([[1, 0, 0, 0], [1, 1, 0, 0]])
    expected = t([[0.75, -0.25, -0.25, -0.25], [0.5, 0.5, -0.5, -0.5]])
    torch.testing.assert_close(grpo_advantages(rewards, norm="none"), expected)
    torch.testing.assert_close(dr_grpo_advantages(rewards), expected)


@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_group_of_one_gets_zeros(norm: str) -> None:
    adv = grpo_advantages(t([[1], [0]]), norm=norm)
    assert torch.equal(adv, torch.zeros(2, 1, dtype=torch.float64))
    assert torch.equal(rloo_advantages(t([[1], [0]])), torch.zeros(2, 1, dtype=torch.float64))


def test_rloo_leave_one_out_baseline() -> None:
    # Response 0's baseline: mean(0, 0, 0) = 0 -> 1; the others: mean(1, 0, 0) = 1/3 -> -1/3.
    adv = rloo_advantages(t([[1, 0, 0, 0], [2, 4, 0, 0]]))
    # Row 2: baselines (4+0+0)/3, (2+0+0)/3, 6/3, 6/3.
    expected = t([[1, -1 / 3, -1 / 3, -1 / 3], [2 - 4 / 3, 4 - 2 / 3, -2, -2]])
    torch.testing.assert_close(adv, expected)


def test_bad_input_raises() -> None:
    with pytest.raises(RlvrError, match="norm"):
        grpo_advantages(t([[1, 0]]), norm="std")
    with pytest.raises(RlvrError, match=r"\(B, G\)"):
        grpo_advantages(torch.tensor([1.0, 0.0]))
    with pytest.raises(RlvrError, match="floating"):
        rloo_advantages(torch.tensor([[1, 0]]))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda b: st.integers(2, 8).flatmap(
            lambda g: st.lists(
                st.lists(st.sampled_from([0.0, 1.0, 0.5, -1.0, 3.0]), min_size=g, max_size=g),
                min_size=b,
                max_size=b,
            )
        )
    ),
    st.sampled_from(["group", "batch", "none", "rloo"]),
)
def test_advantages_sum_to_zero_per_group(rows: list[list[float]], norm: str) -> None:
    rewards = t(rows)
    adv = rloo_advantages(rewards) if norm == "rloo" else grpo_advantages(rewards, norm=norm)
    assert adv.shape == rewards.shape
    torch.testing.assert_close(adv.sum(dim=1), torch.zeros(len(rows), dtype=torch.float64))
    # A better response never gets a lower advantage than a worse one in its group.
    order = rewards.argsort(dim=1)
    assert (adv.gather(1, order).diff(dim=1) >= -1e-12).all()


def test_gae_gamma_lambda_one_is_return_minus_value() -> None:
    rewards, values = t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]])
    adv, returns = gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, t([[0.5, 0.4, 0.3]]))
    torch.testing.assert_close(returns, t([[1.0, 1.0, 1.0]]))


def test_gae_discounted_by_hand() -> None:
    rewards, values = t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]])
    # deltas: t2 = 1 - 0.7 = 0.3; t1 = 0.9 * 0.7 - 0.6 = 0.03; t0 = 0.9 * 0.6 - 0.5 = 0.04.
    # gae (gamma * lam = 0.45): 0.3; 0.03 + 0.45 * 0.3 = 0.165; 0.04 + 0.45 * 0.165 = 0.11425.
    adv, returns = gae_advantages(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.5)
    torch.testing.assert_close(adv, t([[0.11425, 0.165, 0.3]]))
    torch.testing.assert_close(returns, t([[0.61425, 0.765, 1.0]]))


def test_gae_skips_masked_positions_anywhere() -> None:
    plain_adv, plain_ret = gae_advantages(t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]]), torch.ones(1, 3), 0.9, 0.5)
    # Left, inner and right padding with junk rewards / values in the padded slots.
    rewards = t([[9, 0, 9, 0, 1, 9]])
    values = t([[7, 0.5, 7, 0.6, 0.7, 7]])
    mask = torch.tensor([[0, 1, 0, 1, 1, 0]])
    adv, returns = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.5)
    torch.testing.assert_close(adv[mask.bool()], plain_adv[0])
    torch.testing.assert_close(returns[mask.bool()], plain_ret[0])
    assert torch.equal(adv[~mask.bool()], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(returns[~mask.bool()], torch.zeros(3, dtype=torch.float64))


def test_gae_fully_masked_row_is_zero() -> None:
    adv, returns = gae_advantages(t([[1, 2]]), t([[3, 4]]), torch.zeros(1, 2))
    assert torch.equal(adv, torch.zeros(1, 2, dtype=torch.float64))
    assert torch.equal(returns, torch.zeros(1, 2, dtype=torch.float64))


def test_masked_whiten_by_hand() -> None:
    x, mask = t([[1, 2, 3, 100]]), torch.tensor([[1, 1, 1, 0]])
    # mean 2, unbiased var 1.
    torch.testing.assert_close(masked_whiten(x, mask), t([[-1, 0, 1, 0]]))
    torch.testing.assert_close(masked_whiten(x, mask, shift_mean=False), t([[1, 2, 3, 0]]))
    with pytest.raises(RlvrError, match="at least 2"):
        masked_whiten(x, torch.tensor([[1, 0, 0, 0]]))


def test_the_registry_chooses_each_estimator_by_its_algo_name() -> None:
    from oneshot_rlvr.algo.advantages import ALGOS, OUTCOME_ESTIMATORS, outcome_advantages

    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    torch.testing.assert_close(outcome_advantages(rewards, "grpo", norm="batch"),
                               grpo_advantages(rewards, norm="batch"))
    torch.testing.assert_close(outcome_advantages(rewards, "rloo", norm="group"), rloo_advantages(rewards))
    # Dr. GRPO one way: algo=dr_grpo is grpo with adv_norm=none, whatever adv_norm says.
    for norm in ("group", "batch", "none"):
        torch.testing.assert_close(outcome_advantages(rewards, "dr_grpo", norm=norm),
                                   outcome_advantages(rewards, "grpo", norm="none"))
    torch.testing.assert_close(outcome_advantages(rewards, "dr_grpo"), dr_grpo_advantages(rewards))
    assert set(ALGOS) == {*OUTCOME_ESTIMATORS, "dr_grpo", "ppo"}
    with pytest.raises(RlvrError, match="algo='ppo': no outcome advantage estimator"):
        outcome_advantages(rewards, "ppo")
