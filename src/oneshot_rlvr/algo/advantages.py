"""Advantage estimators: GRPO (group / batch / no std), Dr. GRPO, RLOO, and GAE for PPO with a critic.

Outcome rewards come as a (B, G) tensor: B prompts (groups), G sampled responses per prompt. The
group estimators return one advantage per response, (B, G); the trainer broadcasts it over the
response's tokens. GAE works on token-level (B, T) rewards and values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from oneshot_rlvr.errors import RlvrError

NORMS = ("group", "batch", "none")
"""Values of `grpo_advantages`' norm (the `adv_norm` setting)."""


def _check_rewards(rewards: Tensor) -> None:
    if rewards.dim() != 2:
        raise RlvrError(f"rewards: expected shape (B, G), got {tuple(rewards.shape)}")
    if not rewards.is_floating_point():
        raise RlvrError(f"rewards: expected a floating-point tensor, got {rewards.dtype}")


def grpo_advantages(rewards: Tensor, *, norm: str = "group", eps: float = 1e-6) -> Tensor:
    """GRPO advantages of outcome rewards (B, G) -> (B, G).

    Each row is one group (the G responses to one prompt). With centred = r - (mean of r's group):

    - ``"group"``: centred / (std of the group + eps), the paper's and verl's estimator. The std is
      the unbiased one (divides by G - 1, `torch.std`'s default), so an all-equal group gets 0.
    - ``"batch"``: centred / (std of all B * G rewards + eps), the unbiased std over the whole batch
      (one scale for every group, as in "Lite PPO" and TRL's ``scale_rewards="batch"``).
    - ``"none"``: centred only (Dr. GRPO: no std division, so no per-question difficulty weighting).

    A group of size 1 (G = 1) gets all-zero advantages under every norm: there is nothing to compare
    its single response with, and the unbiased std of one value is undefined.
    """
    _check_rewards(rewards)
    if norm not in NORMS:
        raise RlvrError(f"norm: expected one of {NORMS}, got {norm!r}")
    if rewards.shape[1] < 2:
        return torch.zeros_like(rewards)
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if norm == "group":
        return centred / (rewards.std(dim=1, keepdim=True) + eps)
    if norm == "batch":
        return centred / (rewards.std() + eps)
    return centred


def dr_grpo_advantages(rewards: Tensor) -> Tensor:
    """Dr. GRPO advantages (B, G) -> (B, G): the group mean removed, no std division."""
    return grpo_advantages(rewards, norm="none")


def rloo_advantages(rewards: Tensor) -> Tensor:
    """REINFORCE leave-one-out advantages (B, G) -> (B, G).

    Response i's baseline is the mean reward of the other G - 1 responses of its group, which gives
    r_i - baseline_i = G / (G - 1) * (r_i - group mean). A group of size 1 gets zeros (no other
    response to form a baseline from).
    """
    _check_rewards(rewards)
    g = rewards.shape[1]
    if g < 2:
        return torch.zeros_like(rewards)
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)
    return rewards - baseline


OutcomeEstimator = Callable[[Tensor, str], Tensor]
"""(B, G) outcome rewards and the `adv_norm` setting -> (B, G) advantages."""

OUTCOME_ESTIMATORS: dict[str, OutcomeEstimator] = {
    "grpo": lambda rewards, norm: grpo_advantages(rewards, norm=norm),
    "rloo": lambda rewards, norm: rloo_advantages(rewards),  # (its baseline needs no normalisation)
}
"""The advantage estimators of outcome rewards, by the `algo` name that chooses them."""
ALGO_ALIASES: dict[str, tuple[str, str]] = {"dr_grpo": ("grpo", "none")}
"""algo names that stand for an estimator with a fixed norm: dr_grpo is grpo with adv_norm=none (its
adv_norm is ignored), the one Dr. GRPO estimator however it is chosen."""
CRITIC_ALGOS = ("ppo",)
"""algo names whose advantages come from a critic's values (GAE, `gae_advantages`), not from the rewards alone."""
ALGOS = (*OUTCOME_ESTIMATORS, *ALGO_ALIASES, *CRITIC_ALGOS)
"""Values of the `algo` setting."""


def outcome_advantages(rewards: Tensor, algo: str = "grpo", *, norm: str = "group") -> Tensor:
    """(B, G) outcome rewards -> (B, G) advantages by the estimator the `algo` setting names (an alias resolved
    first); `norm` is the `adv_norm` setting. A critic's algo (ppo) has none: its advantages need values."""
    name, norm = ALGO_ALIASES.get(algo, (algo, norm))
    if name not in OUTCOME_ESTIMATORS:
        known = ", ".join((*OUTCOME_ESTIMATORS, *ALGO_ALIASES))
        raise RlvrError(f"algo={algo!r}: no outcome advantage estimator (choose from {known})")
    return OUTCOME_ESTIMATORS[name](rewards, norm)


def _check_token_tensors(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise RlvrError(f"expected tensors of one shape (B, T), got {shapes}")


def gae_advantages(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation for PPO with a critic.

    Args:
        rewards: (B, T) token-level rewards; an outcome reward sits at each row's last valid token
            (minus a per-token KL penalty, if the trainer puts KL in the reward).
        values: (B, T) critic values V(s_t) at the same positions.
        mask: (B, T) 1 for response tokens, 0 elsewhere. Masked positions are skipped: the
            recursion carries the next valid token's value and advantage over them, so left, right
            or inner padding all give the advantages of the unpadded sequence.
        gamma: discount; lam: GAE lambda (1, 1 gives returns-to-go minus values).

    Returns:
        (advantages, returns), both (B, T), with returns = advantages + values and both 0 at masked
        positions. The advantages are not whitened; verl whitens them with
        ``masked_whiten(advantages, mask)`` before the policy loss.
    """
    _check_token_tensors(rewards=rewards, values=values, mask=mask)
    m = mask.to(values.dtype)
    next_value = torch.zeros_like(values[:, 0])
    last_gae = torch.zeros_like(values[:, 0])
    reversed_adv = []
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae
        last_gae = m[:, t] * gae + (1 - m[:, t]) * last_gae
        next_value = m[:, t] * values[:, t] + (1 - m[:, t]) * next_value
        reversed_adv.append(last_gae)
    advantages = torch.stack(reversed_adv[::-1], dim=1) * m
    returns = (advantages + values) * m
    return advantages, returns


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, *, eps: float = 1e-8) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the entries where mask is 1; (B, T) -> (B, T).

    Mean and unbiased variance are taken over all valid entries of the batch. With
    ``shift_mean=False`` the mean is added back (only the scale changes). Masked entries come out 0.
    At least two valid entries are needed (the unbiased variance of one value is undefined).
    """
    if x.shape != mask.shape:
        raise RlvrError(f"masked_whiten: x {tuple(x.shape)} and mask {tuple(mask.shape)} differ in shape")
    valid = mask.bool()
    count = int(valid.sum())
    if count < 2:
        raise RlvrError(f"masked_whiten: needs at least 2 valid entries, mask has {count}")
    xs = torch.where(valid, x, torch.zeros_like(x))
    mean = xs.sum() / count
    var = torch.where(valid, (x - mean) ** 2, torch.zeros_like(x)).sum() / (count - 1)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(valid, whitened, torch.zeros_like(whitened))
