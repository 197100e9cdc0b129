"""One policy update from a scored rollout batch: mini-batches x PPO epochs, micro-batch gradient
accumulation, one all-reduce and one optimizer step per mini-batch.

Losses are normalised by counts over the whole mini-batch (all micro-batches, all ranks), so the
accumulated gradient equals the gradient of the mini-batch loss for every aggregation mode.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from oneshot_rlvr.algo import (
    aggregate,
    kl_penalty,
    policy_loss,
    response_logprobs,
    token_logprobs,
    token_statistics,
    total_loss,
    value_loss,
)
from oneshot_rlvr.algo.variants import em_loss, high_entropy_mask
from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.precision import resolve_autocast
from oneshot_rlvr.train import dist


class TrainingDiverged(RlvrError):
    """The loss or gradient became NaN or infinite."""


@dataclass
class Batch:
    """Rows of one rank: (N, L) token tensors of prompt + response; advantages per row (N,) or per
    token (N, L); PPO adds the critic's old values and the returns, (N, L)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    adv: torch.Tensor
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    returns: torch.Tensor | None = None


_TOKEN_FIELDS = ("old_logp", "ref_logp", "old_values", "returns")


def autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast where `cfg.autocast` asks for it (auto: where `device` has native bf16), else nothing."""
    # (the trainer resolves auto once at the start; a caller of the library may pass it as is)
    setting = resolve_autocast(cfg.autocast, device) if cfg.autocast == "auto" else cfg.autocast
    if setting == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def micro_batches(
    batch: Batch, rows: list[int], cfg: TrainConfig
) -> Iterator[tuple[torch.Tensor, slice, dict[str, torch.Tensor]]]:
    """(row index, column slice, tensors) of each micro-batch of `rows`, by row count or token budget.

    Rows are grouped by length (shortest first) and each group is trimmed of all-padding columns, so
    responses that ended early are not padded up to the longest one of the batch.
    """
    lengths = batch.attention_mask.sum(dim=1)
    rows = sorted(rows, key=lambda r: int(lengths[r]))
    groups: list[list[int]] = []
    if cfg.micro_batch_tokens > 0:
        current: list[int] = []
        for r in rows:
            longest = max([int(lengths[i]) for i in current] + [int(lengths[r])])
            if current and longest * (len(current) + 1) > cfg.micro_batch_tokens:
                groups.append(current)
                current = []
            current.append(r)
        if current:
            groups.append(current)
    else:
        groups = [rows[i : i + cfg.micro_batch_size] for i in range(0, len(rows), cfg.micro_batch_size)]
    for group in groups:
        idx = torch.tensor(group)
        mask = batch.attention_mask[idx]
        used = mask.any(dim=0).nonzero().squeeze(-1)
        cols = slice(int(used[0]), int(used[-1]) + 1)
        out = {"input_ids": batch.input_ids[idx, cols], "attention_mask": mask[:, cols],
               "response_mask": batch.response_mask[idx, cols],
               "adv": batch.adv[idx, cols] if batch.adv.dim() == 2 else batch.adv[idx]}
        for name in _TOKEN_FIELDS:
            value = getattr(batch, name)
            if value is not None:
                out[name] = value[idx, cols]
        yield idx, cols, out


@torch.no_grad()
def score_tokens(model: Any, batch: Batch, cfg: TrainConfig, device: torch.device, *,
                 share_prefix: bool = True) -> torch.Tensor:
    """(N, L) log-probs of the response tokens, no gradients (old policy or reference); `share_prefix` as in
    `response_logprobs`."""
    out = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for idx, cols, mb in micro_batches(batch, list(range(batch.input_ids.shape[0])), cfg):
        with autocast(cfg, device):
            logp = response_logprobs(model, mb["input_ids"].to(device), mb["attention_mask"].to(device),
                                     mb["response_mask"].to(device), temperature=cfg.temperature,
                                     share_prefix=share_prefix)
        out[idx, cols] = logp.float().cpu()
    return out


@torch.no_grad()
def score_token_stats(model: Any, batch: Batch, cfg: TrainConfig,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`score_tokens` with each position's entropy and self-certainty as well: (logp, entropy, certainty), (N, L)
    each; the one scoring pass that rewards reading the policy's statistics use."""
    shape = batch.input_ids.shape
    out = (torch.zeros(shape), torch.zeros(shape), torch.zeros(shape))
    for idx, cols, mb in micro_batches(batch, list(range(shape[0])), cfg):
        with autocast(cfg, device):
            values = token_statistics(model, mb["input_ids"].to(device), mb["attention_mask"].to(device),
                                      mb["response_mask"].to(device), temperature=cfg.temperature)
        for dst, value in zip(out, values, strict=True):
            dst[idx, cols] = value.float().cpu()
    return out


@dataclass
class CriticState:
    """PPO's value model and its optimizer."""

    model: Any
    optimizer: torch.optim.Optimizer


class UpdateMetrics:
    """What one update reports, accumulated over its micro-batches: loss terms (each already normalised over the
    whole mini-batch, so micro-batch parts add up), per-token metrics weighted by token count, the ratio's
    extremes, and the gradient norm of each optimizer step."""

    def __init__(self) -> None:
        self.loss_terms: dict[str, float] = defaultdict(float)
        self.token_avg: dict[str, float] = defaultdict(float)
        self.extremes: dict[str, float] = {"ratio_min": math.inf, "ratio_max": -math.inf}
        self.token_total = 0.0
        self.grad_norms: list[float] = []

    def add(self, terms: dict[str, torch.Tensor], metrics: dict[str, Any], tokens: float) -> None:
        """One micro-batch: its loss terms, its loss function's metrics, its response-token count."""
        self.token_total += tokens
        for name, value in terms.items():
            self.loss_terms[name] += float(value.detach())
        for name, value in metrics.items():
            if name == "ratio_min":
                self.extremes[name] = min(self.extremes[name], float(value)) if tokens else self.extremes[name]
            elif name == "ratio_max":
                self.extremes[name] = max(self.extremes[name], float(value)) if tokens else self.extremes[name]
            else:
                self.token_avg[name] += float(value) * tokens

    def result(self, updates: int, info: dist.DistInfo, device: torch.device) -> dict[str, float]:
        """Averages over the `updates` optimizer steps (loss terms summed over ranks) and over tokens."""
        out = {name: dist.all_sum(total, info, device) / updates for name, total in self.loss_terms.items()}
        out.update({name: total / max(self.token_total, 1.0) for name, total in self.token_avg.items()})
        out.update({name: value for name, value in self.extremes.items() if math.isfinite(value)})
        out["grad_norm"] = sum(self.grad_norms) / len(self.grad_norms)
        return out


def _normalisers(batch: Batch, rows: list[int], cfg: TrainConfig, info: dist.DistInfo,
                 device: torch.device) -> dict[str, float]:
    """The loss normalisers of one mini-batch, counted over every rank: tokens, sequences, the length budget."""
    local_tokens = float(batch.response_mask[rows].sum())
    return dict(
        num_tokens=max(dist.all_sum(local_tokens, info, device), 1.0),
        num_seqs=float(dist.all_sum(float((batch.response_mask[rows].sum(1) > 0).sum()), info, device)) or 1.0,
        max_len=float(cfg.max_new_tokens),
    )


def micro_batch_loss(model: Any, mb: dict[str, torch.Tensor], cfg: TrainConfig, norm: dict[str, float],
                     device: torch.device, step: int, critic: CriticState | None = None,
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
    """The loss of one micro-batch (on `device`), its terms (pg_loss, entropy, kl, loss) and its metrics."""
    with autocast(cfg, device):
        logp, entropy = token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["response_mask"],
                                       temperature=cfg.temperature)
    mask = mb["response_mask"]
    # One update per rollout batch: the sampling policy is the current one.
    old = mb["old_logp"] if "old_logp" in mb else logp.detach()
    # (80/20: the policy gradient on the high-entropy tokens only; the normalisers stay the whole
    # mini-batch's, as in the paper)
    pg_mask = high_entropy_mask(entropy, mask, cfg.entropy_token_quantile) if cfg.entropy_token_quantile > 0 else mask
    pg, metrics = policy_loss(logp, old, mb["adv"], pg_mask, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                              agg=cfg.loss_agg, ratio_level=cfg.ratio_level, **norm)
    ent = aggregate(entropy, mask, cfg.loss_agg, **norm)
    kl = (aggregate(kl_penalty(logp, mb["ref_logp"], cfg.kl_kind), mask, cfg.loss_agg, **norm)
          if "ref_logp" in mb else torch.zeros((), device=device))
    if cfg.loss == "em":
        loss = em_loss(ent, kl, kl_coef=cfg.kl_coef)
    else:
        loss = total_loss(pg, ent, kl, pg_coef=cfg.pg_coef, entropy_coef=cfg.entropy_coef, kl_coef=cfg.kl_coef)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"step {step}: the loss is {loss.item()}; stopping")
    if critic is not None:
        with autocast(cfg, device):
            values = critic.model(mb["input_ids"], mb["attention_mask"])
        vloss, v_metrics = value_loss(values, mb["old_values"], mb["returns"], mask, clip=cfg.value_clip,
                                      agg=cfg.loss_agg, **norm)
        loss = loss + cfg.vf_coef * vloss
        metrics = {**metrics, **v_metrics, "value_loss": vloss.detach()}
    return loss, {"pg_loss": pg, "entropy": ent, "kl": kl, "loss": loss}, metrics


def _optimizer_step(params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer, scheduler: Any,
                    critic: CriticState | None, cfg: TrainConfig, info: dist.DistInfo, step: int) -> float:
    """Average the gradients over ranks, clip, step (policy, then critic); returns the policy's gradient norm."""
    dist.average_gradients(params, info)
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
    if not math.isfinite(grad_norm):
        raise TrainingDiverged(f"step {step}: the gradient norm is {grad_norm}; stopping")
    optimizer.step()
    scheduler.step()
    if critic is not None:
        critic_params = [p for p in critic.model.parameters() if p.requires_grad]
        dist.average_gradients(critic_params, info)
        torch.nn.utils.clip_grad_norm_(critic_params, clip)
        critic.optimizer.step()
    if not all(bool(torch.isfinite(p).all()) for p in params):
        raise TrainingDiverged(f"step {step}: the weights are no longer finite; stopping")
    return grad_norm


def update_policy(
    model: Any, optimizer: torch.optim.Optimizer, scheduler: Any, batch: Batch, cfg: TrainConfig,
    info: dist.DistInfo, device: torch.device, step: int, critic: CriticState | None = None,
) -> dict[str, float]:
    """Mini-batches x PPO epochs of clipped policy-gradient updates (and critic updates for PPO);
    returns averaged metrics."""
    params = [p for p in model.parameters() if p.requires_grad]
    n_mini = cfg.batch_size // cfg.mini_batch_size
    rows_per_mini = batch.input_ids.shape[0] // n_mini
    metrics = UpdateMetrics()
    for _ in range(cfg.ppo_epochs):
        for m in range(n_mini):
            rows = list(range(m * rows_per_mini, (m + 1) * rows_per_mini))
            norm = _normalisers(batch, rows, cfg, info, device)
            optimizer.zero_grad(set_to_none=True)
            if critic is not None:
                critic.optimizer.zero_grad(set_to_none=True)
            for _, _, mb in micro_batches(batch, rows, cfg):
                mb = {k: v.to(device) for k, v in mb.items()}
                loss, terms, loss_metrics = micro_batch_loss(model, mb, cfg, norm, device, step, critic)
                # Gradients are averaged over ranks, but the normalisers already count every rank.
                (loss * info.world).backward()
                metrics.add(terms, loss_metrics, float(mb["response_mask"].sum()))
            metrics.grad_norms.append(_optimizer_step(params, optimizer, scheduler, critic, cfg, info, step))
    return metrics.result(cfg.ppo_epochs * n_mini, info, device)
