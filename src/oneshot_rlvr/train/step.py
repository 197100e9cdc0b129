"""One RL step: rollouts -> rewards -> advantages -> old and reference log-probs -> update -> its metrics row.

The math lives in `oneshot_rlvr.algo`, the reward contract in `oneshot_rlvr.reward.functions`, the update in
`train.update`; this module wires them in order for one step of a `Run`.
"""

from __future__ import annotations

from typing import Any

import torch

from oneshot_rlvr.algo import (
    frac_zero_std,
    gae_advantages,
    masked_whiten,
    outcome_advantages,
    overlong_penalty,
    truncation_mask,
    weight_positive,
)
from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.data import Problem
from oneshot_rlvr.reward.functions import (
    Reward,
    RewardInputs,
    TokenStats,
    check_scores,
    format_reward,
    gold_correct,
)
from oneshot_rlvr.rollout import RolloutEngine, Rollouts, SamplingParams
from oneshot_rlvr.train import dist
from oneshot_rlvr.train.critic import outcome_token_rewards
from oneshot_rlvr.train.metrics import Timer, peak_memory_gb
from oneshot_rlvr.train.run import Run
from oneshot_rlvr.train.update import (
    Batch,
    TrainingDiverged,
    autocast,
    score_token_stats,
    score_tokens,
    update_policy,
)


def advantages(rewards: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """(B, G) rewards -> (B, G) advantages by the configured outcome estimator (PPO: `_add_values_and_gae`)."""
    adv = outcome_advantages(rewards, cfg.algo, norm=cfg.adv_norm)
    return weight_positive(adv, cfg.pos_weight) if cfg.pos_weight != 1 else adv


def train_step(run: Run, reward: Reward, step: int) -> dict[str, Any]:
    """Advance `run` by one step (its model, optimizer, sampler and history); returns the step's metrics row."""
    cfg, info, device, model = run.cfg, run.info, run.device, run.model
    timer = Timer()
    rows = run.sampler.next_batch(cfg.batch_size)
    first = info.rank * run.per_rank
    mine = rows[first : first + run.per_rank]
    with timer("generate"), torch.no_grad(), autocast(cfg, device):
        run.engine.sync(model)
        roll = _rollouts(run.engine, [run.prompts[r] for r, _ in mine], cfg, step, first, run.sampling)
    batch = Batch(roll.input_ids, roll.attention_mask, roll.full_response_mask, torch.zeros(len(roll)))
    stats = None
    if reward.needs_token_stats:  # the old-policy scoring pass, made here once for the reward and the loss
        with timer("logprobs_reward"):
            stats = TokenStats(*score_token_stats(model, batch, cfg, device), batch.response_mask)
    with timer("score"):
        local_rewards, correct, reward_metrics = _score(reward, [run.problems[r] for r, _ in mine], roll, stats,
                                                        cfg, step, first * cfg.n)
        rewards = dist.all_gather_cat(local_rewards.to(device), info).cpu()
        accuracy = rewards if correct is None else dist.all_gather_cat(correct.to(device), info).cpu()
        accuracy = accuracy > 0.5
    if run.critic is None:  # (PPO's advantages come from its critic, below)
        batch.adv = advantages(rewards, cfg)[first : first + run.per_rank].reshape(-1)
    if cfg.mask_truncated:
        truncated = torch.tensor([r == "length" for r in roll.finish_reasons])
        batch.response_mask = truncation_mask(batch.response_mask, truncated)
    with timer("logprobs"):
        if run.critic is not None:
            _add_values_and_gae(run.critic.model, batch, local_rewards.reshape(-1), cfg, device)
        if run.ref is not None or (cfg.kl_coef > 0 and cfg.lora_r):
            batch.ref_logp = _reference_logp(model, run.ref, batch, cfg, device)
        if not run.single_update:
            batch.old_logp = stats.logp if stats is not None else score_tokens(model, batch, cfg, device)
    with timer("update"):
        update_stats = update_policy(model, run.optimizer, run.scheduler, batch, cfg, info, device, step, run.critic)
    for (r, epoch), acc in zip(rows, accuracy.float().mean(dim=1).tolist(), strict=True):
        run.history.add(run.problems[r].id, epoch, acc * cfg.n, cfg.n)
    run.history.close_epochs_before(run.sampler.position.epoch)
    row = _metrics_row(step, rewards, accuracy, roll, update_stats, timer, run)
    row["frac_zero_std"] = frac_zero_std(rewards)
    row.update({k: dist.all_sum(v, info, device) / info.world for k, v in reward_metrics.items()})
    return row


def _rollouts(engine: RolloutEngine, prompts: list[str], cfg: TrainConfig, step: int, first_prompt: int,
              sampling: SamplingParams) -> Rollouts:
    """This rank's rollouts; row i draws from the stream of (seed, step, global row index), so the samples are
    the same however the batch is split over ranks or scheduled into rollout_batch_rows."""
    seed = (cfg.seed * 1_000_003 + step * 10_007) % 2**63
    try:
        return engine.generate(prompts, cfg.n, sampling, seed=seed, first_row=first_prompt * cfg.n)
    except RuntimeError as err:  # sampling from inf/nan probabilities: the weights blew up
        if "inf" in str(err) or "nan" in str(err):
            raise TrainingDiverged(f"step {step}: sampling failed on non-finite probabilities ({err})") from err
        raise


def _score(reward: Reward, problems: list[Problem], roll: Rollouts, stats: TokenStats | None, cfg: TrainConfig,
           step: int, first_row: int) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    """This process's (B, n) rewards (with DAPO's overlong penalty when set), (B, n) correctness against the gold
    (None: the math reward's own verdicts, rewards > 0.5), and the reward's metrics."""
    per_response = [p for p in problems for _ in range(cfg.n)]
    result = reward.score(RewardInputs(per_response, roll.texts, cfg.n, cfg.seed, step, first_row, stats))
    scores = check_scores(result.rewards, reward.name, per_response, cfg.n, step)
    rewards = torch.tensor(scores, dtype=torch.float32).view(len(problems), cfg.n)
    if cfg.overlong_penalty > 0:
        rewards = rewards + overlong_penalty(roll.response_lengths, cfg.max_new_tokens, cfg.overlong_buffer,
                                             cfg.overlong_penalty).view_as(rewards)
    if reward.name == "math" and cfg.overlong_penalty == 0:
        return rewards, None, result.metrics
    correct = result.correct if result.correct is not None else gold_correct(per_response, roll.texts)
    return rewards, torch.tensor(correct, dtype=torch.float32).view(len(problems), cfg.n), result.metrics


@torch.no_grad()
def _add_values_and_gae(critic: Any, batch: Batch, rewards: torch.Tensor, cfg: TrainConfig,
                        device: torch.device) -> None:
    """PPO: the critic's values, then GAE advantages (whitened over the batch) and returns."""
    values = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
    for start in range(0, values.shape[0], cfg.micro_batch_size):
        rows = slice(start, start + cfg.micro_batch_size)
        with autocast(cfg, device):
            values[rows] = critic(batch.input_ids[rows].to(device), batch.attention_mask[rows].to(device)).float().cpu()
    mask = batch.response_mask
    values = values * mask
    adv, returns = gae_advantages(outcome_token_rewards(rewards, mask), values, mask, cfg.gamma, cfg.lam)
    batch.adv = masked_whiten(adv, mask) if int(mask.sum()) > 1 else adv
    batch.old_values, batch.returns = values, returns


def _reference_logp(model: Any, ref: Any, batch: Batch, cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    if ref is not None:
        return score_tokens(ref, batch, cfg, device)
    with model.disable_adapter():  # LoRA: the base weights are the reference
        return score_tokens(model, batch, cfg, device)


def _metrics_row(step: int, rewards: torch.Tensor, accuracy: torch.Tensor, roll: Rollouts, stats: dict[str, float],
                 timer: Timer, run: Run) -> dict[str, Any]:
    """The step's row: rewards, (B, G) correctness against the gold (`accuracy`), the update's metrics, lengths,
    boxed rate, time per phase, memory, learning rate."""
    info, device = run.info, run.device
    lengths = roll.response_lengths.float()
    new_tokens = dist.all_sum(float(lengths.sum()), info, device)
    step_s = sum(timer.seconds.values())
    truncated = dist.all_sum(float(sum(r == "length" for r in roll.finish_reasons)), info, device)
    rows = dist.all_sum(float(len(roll)), info, device)
    return {
        "step": step, "epoch": run.sampler.position.epoch,
        "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "train_accuracy": float(accuracy.float().mean()),
        **stats,
        "response_length_mean": new_tokens / max(rows, 1.0),
        "response_length_max": float(lengths.max()) if len(lengths) else 0.0,
        "truncation_rate": truncated / max(rows, 1.0),
        # (what a format-only reward pays for, logged whatever the reward: "is the gain format, or reasoning?")
        "boxed_rate": dist.all_sum(sum(format_reward(t) for t in roll.texts), info, device) / max(rows, 1.0),
        "tokens_per_s": new_tokens / max(timer.seconds.get("generate", 0.0), 1e-9),
        **{f"time_{k}": v for k, v in timer.seconds.items()}, "time_step": step_s,
        "peak_memory_gb": peak_memory_gb(device), "lr": run.optimizer.param_groups[0]["lr"],
    }
