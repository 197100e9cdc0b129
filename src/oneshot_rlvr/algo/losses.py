"""Per-token loss terms (PPO clipped surrogate, KL penalty, entropy, critic loss) and their aggregation.

Shapes: B sequences, T response positions, V vocabulary. ``mask`` is (B, T), 1 (or True) on the
response tokens that count; masked positions are ignored even when they hold inf or NaN.

Gradient accumulation
---------------------
A trainer splits one mini-batch into micro-batches (and across data-parallel ranks), calls
``loss.backward()`` per micro-batch and takes one optimizer step. The accumulated gradient equals the
gradient of the full mini-batch loss only if every micro-batch loss is normalised by the counts of the
WHOLE mini-batch, not its own. ``aggregate``, ``policy_loss`` and ``value_loss`` therefore take three
optional keyword-only normalisers:

- ``num_tokens``: valid tokens in the whole mini-batch (used by ``"token-mean"``);
- ``num_seqs``: sequences with at least one valid token in the whole mini-batch (the ``"seq-mean-*"``
  modes);
- ``max_len``: the constant of ``"seq-mean-token-sum-norm"`` (by default the T of the tensor passed,
  which differs between micro-batches padded to their own lengths; pass one constant, e.g. the
  maximum response length of the run).

With them, sum over micro-batches of ``aggregate(v_k, m_k, mode, num_tokens=N, num_seqs=S,
max_len=L)`` equals ``aggregate(v, m, mode, max_len=L)`` on the full mini-batch, exactly, for every
mode (micro-batches split the mini-batch by whole rows). Averaging micro-batch losses that were
normalised by their own counts does not: it reweights tokens or sequences whenever micro-batches
differ in token or row counts. Under DistributedDataParallel, which averages gradients over W ranks,
pass the counts over all ranks and multiply each loss by W (or pass the counts divided by W).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from oneshot_rlvr.algo.variants import sequence_log_ratio
from oneshot_rlvr.errors import RlvrError

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
KL_KINDS = ("k1", "k2", "k3")
RATIO_LEVELS = ("token", "sequence")
# exp() of a log-ratio beyond this overflows float32; verl clamps at the same place.
_MAX_LOG_RATIO = 20.0


def _check_same_2d(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise RlvrError(f"expected tensors of one shape (B, T), got {shapes}")


def _check_positive(**numbers: float | None) -> None:
    for name, n in numbers.items():
        if n is not None and not n > 0:
            raise RlvrError(f"{name}: expected a positive number, got {n}")


def aggregate(
    values: Tensor,
    mask: Tensor,
    mode: str = "token-mean",
    *,
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: float | None = None,
) -> Tensor:
    """Reduce per-token values (B, T) to a scalar over the valid tokens of ``mask`` (B, T).

    Modes (n_i = valid tokens of row i, S = rows with n_i > 0, N = sum of n_i):

    - ``"token-mean"``: sum of all valid values / N (every token weighs the same).
    - ``"seq-mean-token-mean"``: mean over the S rows of each row's mean over its tokens.
    - ``"seq-mean-token-sum"``: mean over the S rows of each row's sum over its tokens.
    - ``"seq-mean-token-sum-norm"``: mean over the S rows of (row sum / max_len), max_len a constant
      (Dr. GRPO; default T, the width of ``values``).

    Fully masked rows contribute nothing and are not counted in S; an all-masked batch gives 0 (with
    zero gradient). ``num_tokens`` / ``num_seqs`` / ``max_len`` replace N / S / T by counts over a
    whole mini-batch so that micro-batch losses sum to the mini-batch loss (see the module docstring).
    """
    _check_same_2d(values=values, mask=mask)
    _check_positive(num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len)
    if mode not in AGG_MODES:
        raise RlvrError(f"aggregation mode: expected one of {AGG_MODES}, got {mode!r}")
    valid = mask.bool()
    masked = torch.where(valid, values, torch.zeros_like(values))
    if mode == "token-mean":
        tokens = valid.sum().clamp(min=1) if num_tokens is None else num_tokens
        return masked.sum() / tokens
    row_sums = masked.sum(dim=-1)
    lengths = valid.sum(dim=-1)
    if mode == "seq-mean-token-mean":
        per_seq = row_sums / lengths.clamp(min=1)
    elif mode == "seq-mean-token-sum":
        per_seq = row_sums
    else:
        per_seq = row_sums / (values.shape[-1] if max_len is None else max_len)
    seqs = (lengths > 0).sum().clamp(min=1) if num_seqs is None else num_seqs
    return per_seq.sum() / seqs


def _masked_mean(x: Tensor, valid: Tensor, count: Tensor) -> Tensor:
    return torch.where(valid, x, torch.zeros_like(x)).sum() / count.clamp(min=1)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    adv: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: float | None = None,
    ratio_level: str = "token",
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate loss with separate low / high clip (clip-higher).

    Per token, with r = exp(logp - old_logp): max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high)),
    then reduced with ``aggregate(..., agg, num_tokens=, num_seqs=, max_len=)``.

    Args:
        logp: (B, T) log-probs of the sampled tokens under the policy being trained (with grad).
        old_logp: (B, T) log-probs under the policy that sampled them (no grad needed).
        adv: (B, T) per-token advantages, or (B,) / (B, 1) one per sequence (broadcast over its tokens).
        mask: (B, T) valid response tokens.

    The log-ratio is clamped to [-20, 20] before exp (as verl does) so extreme ratios give finite
    losses and gradients. ``ratio_level="sequence"`` replaces each token's log-ratio by its sequence's
    mean (GSPO; `oneshot_rlvr.algo.variants.sequence_log_ratio`), so the clip acts per sequence.

    Returns:
        (loss, metrics). ``loss`` is a 0-dim tensor. ``metrics`` holds detached 0-dim tensors, each a
        mean over this call's valid tokens: ``clip_frac`` (the clipped term is the larger one),
        ``clip_frac_high`` (clipped because r > 1 + clip_high), ``clip_frac_low`` (r < 1 - clip_low),
        ``approx_kl`` (k1: mean of old_logp - logp, verl's ``ppo_kl``), ``approx_kl_k3`` (mean of
        exp(old_logp - logp) - (old_logp - logp) - 1, non-negative, lower variance), ``ratio_mean``,
        ``ratio_min``, ``ratio_max``. With no valid token they read as an unchanged policy (0, and 1
        for the ratios).
    """
    _check_same_2d(logp=logp, old_logp=old_logp, mask=mask)
    if adv.dim() == 1 and adv.shape[0] == logp.shape[0]:
        adv = adv[:, None].expand_as(logp)
    elif adv.shape == (logp.shape[0], 1):
        adv = adv.expand_as(logp)
    elif adv.shape != logp.shape:
        raise RlvrError(f"adv: expected shape {tuple(logp.shape)} or ({logp.shape[0]},), got {tuple(adv.shape)}")
    if not (0 <= clip_low < 1 and clip_high >= 0):
        raise RlvrError(f"clip_low must be in [0, 1) and clip_high >= 0, got {clip_low}, {clip_high}")
    if ratio_level not in RATIO_LEVELS:
        raise RlvrError(f"ratio_level: expected one of {RATIO_LEVELS}, got {ratio_level!r}")
    valid = mask.bool()
    # Zero the masked positions before exp so garbage there cannot become inf * 0 = NaN in backward.
    log_ratio = torch.where(valid, logp - old_logp, torch.zeros_like(logp))
    if ratio_level == "sequence":
        log_ratio = sequence_log_ratio(torch.where(valid, logp, torch.zeros_like(logp)),
                                       torch.where(valid, old_logp, torch.zeros_like(old_logp)), valid)
    log_ratio = log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    adv = torch.where(valid, adv, torch.zeros_like(adv))
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    per_token = torch.maximum(unclipped, clipped)
    loss = aggregate(per_token, valid, agg, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len)
    with torch.no_grad():
        metrics = _policy_metrics(log_ratio, ratio, unclipped, clipped, valid, clip_low, clip_high)
    return loss, metrics


def _policy_metrics(
    log_ratio: Tensor,
    ratio: Tensor,
    unclipped: Tensor,
    clipped: Tensor,
    valid: Tensor,
    clip_low: float,
    clip_high: float,
) -> dict[str, Tensor]:
    count = valid.sum()
    is_clipped = clipped > unclipped
    one = torch.ones((), dtype=ratio.dtype, device=ratio.device)
    any_valid = count > 0
    lowest = torch.where(valid, ratio, torch.full_like(ratio, float("inf"))).min()
    highest = torch.where(valid, ratio, torch.full_like(ratio, float("-inf"))).max()
    metrics = {
        "clip_frac": _masked_mean(is_clipped.to(ratio.dtype), valid, count),
        "clip_frac_high": _masked_mean((is_clipped & (ratio > 1 + clip_high)).to(ratio.dtype), valid, count),
        "clip_frac_low": _masked_mean((is_clipped & (ratio < 1 - clip_low)).to(ratio.dtype), valid, count),
        "approx_kl": _masked_mean(-log_ratio, valid, count),
        "approx_kl_k3": _masked_mean(torch.exp(-log_ratio) + log_ratio - 1, valid, count),
        "ratio_mean": torch.where(any_valid, _masked_mean(ratio, valid, count), one),
        "ratio_min": torch.where(any_valid, lowest, one),
        "ratio_max": torch.where(any_valid, highest, one),
    }
    return {name: value.detach() for name, value in metrics.items()}


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: str = "k3") -> Tensor:
    """Per-token estimate of KL(policy || reference) from sampled-token log-probs; same shape as logp.

    - ``"k1"``: logp - ref_logp (unbiased, high variance, can be negative).
    - ``"k2"``: (logp - ref_logp)^2 / 2.
    - ``"k3"``: exp(ref_logp - logp) - (ref_logp - logp) - 1, clamped to [-10, 10] (verl's
      ``low_var_kl``; always >= 0). The log-ratio is first clamped to [-20, 20], which changes no
      value (the result would be clamped to 10 anyway) but keeps exp finite.
    """
    if logp.shape != ref_logp.shape:
        raise RlvrError(f"kl_penalty: logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} differ")
    if kind == "k1":
        return logp - ref_logp
    if kind == "k2":
        return 0.5 * (logp - ref_logp) ** 2
    if kind == "k3":
        log_ratio = (ref_logp - logp).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
        return (torch.exp(log_ratio) - log_ratio - 1).clamp(-10.0, 10.0)
    raise RlvrError(f"kl kind: expected one of {KL_KINDS}, got {kind!r}")


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of softmax(logits) over the last dimension: (..., V) -> (...).

    Uses H = logsumexp(z) - sum softmax(z) * z, which never exponentiates a large logit. Computed in
    float32 at least (half-precision logits are upcast); logits must be finite.
    """
    z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(dim=-1)


def self_certainty_from_logits(logits: Tensor) -> Tensor:
    """Self-certainty (Intuitor, arXiv 2505.19590) of softmax(logits): KL(uniform || p) over the last
    dimension, (..., V) -> (...): -log V - mean over the vocabulary of log p. 0 for a uniform p, larger the
    more peaked. Computed in float32 at least; logits must be finite."""
    z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    logp = torch.log_softmax(z, dim=-1)
    return -math.log(z.shape[-1]) - logp.mean(dim=-1)


def total_loss(
    pg_loss: Tensor,
    entropy: Tensor,
    kl: Tensor,
    *,
    pg_coef: float = 1.0,
    entropy_coef: float = 0.0,
    kl_coef: float = 0.0,
) -> Tensor:
    """pg_coef * pg_loss - entropy_coef * entropy + kl_coef * kl (all already aggregated scalars).

    A positive ``entropy_coef`` rewards entropy (minimising the loss raises it), the paper's sign
    convention; ``pg_coef=0`` is the entropy-only ablation.
    """
    return pg_coef * pg_loss - entropy_coef * entropy + kl_coef * kl


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip: float | None = 0.2,
    agg: str = "token-mean",
    num_tokens: float | None = None,
    num_seqs: float | None = None,
    max_len: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped PPO critic loss: 0.5 * max((v - R)^2, (clip(v, v_old - clip, v_old + clip) - R)^2).

    All tensors are (B, T). ``clip=None`` gives the plain squared error. Aggregated like
    ``policy_loss`` (same ``agg`` modes and whole-mini-batch normalisers). Metrics (detached, means
    over valid tokens): ``value_clip_frac`` (the clipped error is the larger), ``value_mean``,
    ``value_error`` (mean of (v - R)^2).
    """
    _check_same_2d(values=values, old_values=old_values, returns=returns, mask=mask)
    valid = mask.bool()
    zeros = torch.zeros_like(values)
    values = torch.where(valid, values, zeros)
    returns = torch.where(valid, returns, zeros)
    old_values = torch.where(valid, old_values, zeros)
    error = (values - returns) ** 2
    if clip is None:
        per_token = 0.5 * error
        clipped_frac = torch.zeros_like(error)
    else:
        v_clipped = torch.maximum(torch.minimum(values, old_values + clip), old_values - clip)
        clipped_error = (v_clipped - returns) ** 2
        per_token = 0.5 * torch.maximum(error, clipped_error)
        clipped_frac = (clipped_error > error).to(values.dtype)
    loss = aggregate(per_token, valid, agg, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len)
    with torch.no_grad():
        count = valid.sum()
        metrics = {
            "value_clip_frac": _masked_mean(clipped_frac, valid, count),
            "value_mean": _masked_mean(values, valid, count),
            "value_error": _masked_mean(error, valid, count),
        }
    return loss, {name: value.detach() for name, value in metrics.items()}
