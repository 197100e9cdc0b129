"""The follow-up papers' objective variants as pure tensor functions, beside the GRPO / PPO terms.

Shapes as in `oneshot_rlvr.algo.losses`: B sequences, T response positions, ``mask`` (B, T) on the tokens
that count. Each function is one formula; the trainer picks them by setting (`ratio_level`, `pos_weight`,
`entropy_token_quantile`, `mask_truncated`, `overlong_penalty`, `loss=em`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from oneshot_rlvr.errors import RlvrError


def sequence_log_ratio(logp: Tensor, old_logp: Tensor, mask: Tensor) -> Tensor:
    """GSPO's sequence-level importance log-ratio, per token (B, T) -> (B, T).

    Its value at every token of row i is s_i = mean over row i's valid tokens of (logp - old_logp), so
    exp() of it is GSPO's length-normalised sequence ratio and a clip acts on the whole sequence at once.
    Its gradient at token t is that of logp_t (GSPO-token: sg[s_i] + logp_t - sg[logp_t]), so with one
    advantage per sequence the loss's gradient is GSPO's. Masked positions are 0; a row without valid
    tokens is all 0.
    """
    if not (logp.shape == old_logp.shape == mask.shape) or logp.dim() != 2:
        raise RlvrError(f"sequence_log_ratio: expected three (B, T) tensors, got "
                        f"{tuple(logp.shape)}, {tuple(old_logp.shape)}, {tuple(mask.shape)}")
    valid = mask.bool()
    token = torch.where(valid, logp - old_logp, torch.zeros_like(logp))
    per_row = token.sum(dim=-1) / valid.sum(dim=-1).clamp(min=1)
    # (the detached row mean carries the value; logp - logp.detach() is 0 but carries logp's gradient)
    out = per_row.detach()[:, None] + logp - logp.detach()
    return torch.where(valid, out, torch.zeros_like(out))


def weight_positive(adv: Tensor, pos_weight: float) -> Tensor:
    """W-REINFORCE (arXiv 2506.01347): positive advantages times ``pos_weight`` (lambda), the rest as they are.

    Any shape. lambda = 1 is the plain objective; 0 keeps only the negative samples' term (NSR).
    """
    if pos_weight < 0:
        raise RlvrError(f"pos_weight: expected >= 0, got {pos_weight}")
    return torch.where(adv > 0, adv * pos_weight, adv)


def high_entropy_mask(entropy: Tensor, mask: Tensor, fraction: float) -> Tensor:
    """80/20 (arXiv 2506.01939): (B, T) bool, True on the valid tokens whose entropy is in the top ``fraction``.

    The threshold is the (1 - fraction) quantile (linear interpolation, `torch.quantile`) of the valid
    tokens' entropies; a token at or above it is kept, so ties at the threshold are all kept. fraction 0
    keeps nothing, 1 keeps every valid token; no valid token gives an all-False mask.
    """
    if entropy.shape != mask.shape:
        raise RlvrError(f"high_entropy_mask: entropy {tuple(entropy.shape)} and mask {tuple(mask.shape)} differ")
    if not 0 <= fraction <= 1:
        raise RlvrError(f"high_entropy_mask: fraction must be in [0, 1], got {fraction}")
    valid = mask.bool()
    if fraction == 0 or not bool(valid.any()):
        return torch.zeros_like(valid)
    values = entropy.detach()[valid].float()
    threshold = torch.quantile(values, 1 - fraction)
    return valid & (entropy.detach().float() >= threshold)


def truncation_mask(mask: Tensor, truncated: Tensor) -> Tensor:
    """DAPO's overlong filtering: ``mask`` (B, T) with the rows of truncated responses (``truncated`` (B,),
    bool) zeroed, so they add nothing to the loss."""
    if truncated.shape != mask.shape[:1]:
        raise RlvrError(f"truncation_mask: truncated {tuple(truncated.shape)} must be ({mask.shape[0]},)")
    return mask * (~truncated.bool())[:, None].to(mask.dtype)


def overlong_penalty(lengths: Tensor, max_len: int, buffer: int, coef: float = 1.0) -> Tensor:
    """DAPO's soft overlong punishment (arXiv 2503.14476, eq. 13), added to the reward; (N,) -> (N,) float32.

    0 up to max_len - buffer tokens, then falling linearly to -coef at max_len, -coef beyond:
    coef * clamp(((max_len - buffer) - length) / buffer, -1, 0).
    """
    if not 0 < buffer <= max_len:
        raise RlvrError(f"overlong_penalty: buffer must be in (0, max_len={max_len}], got {buffer}")
    over = ((max_len - buffer) - lengths.float()) / buffer
    return coef * over.clamp(-1.0, 0.0)


def em_loss(entropy: Tensor, kl: Tensor, *, kl_coef: float = 0.0) -> Tensor:
    """One-shot entropy minimisation (arXiv 2505.20282): the aggregated token entropy of the model's own
    samples, plus kl_coef * kl; no reward or advantage enters (both inputs already aggregated scalars)."""
    return entropy + kl_coef * kl


def frac_zero_std(rewards: Tensor) -> float:
    """Share of groups (rows of (B, G) rewards) whose rewards are all equal: their group advantages are 0,
    so they carry no policy gradient (what a saturated 1-shot example turns into)."""
    if rewards.dim() != 2 or rewards.shape[0] == 0:
        raise RlvrError(f"frac_zero_std: expected rewards of shape (B, G) with B > 0, got {tuple(rewards.shape)}")
    flat = (rewards.max(dim=1).values == rewards.min(dim=1).values).float()
    return float(flat.mean())
