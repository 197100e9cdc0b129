"""The training loop of 1-shot RLVR: rollouts -> rewards -> advantages -> reference -> update -> log.

One readable function; the math lives in `oneshot_rlvr.algo`, the update in `train.update`,
checkpoints in `train.state`. Everything it does is decided by one `TrainConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
from pathlib import Path
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
from oneshot_rlvr.config import TrainConfig, save_config, with_absolute_paths
from oneshot_rlvr.data import Problem, render_prompt
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import LoadOptions, load_model, load_tokenizer
from oneshot_rlvr.models.precision import describe, resolve_autocast
from oneshot_rlvr.models.stops import resolved_stop
from oneshot_rlvr.reward.functions import (
    Reward,
    RewardFn,
    RewardInputs,
    TokenStats,
    check_scores,
    gold_correct,
    resolve_reward,
)
from oneshot_rlvr.rollout import RolloutEngine, Rollouts, SamplingParams
from oneshot_rlvr.rollout.hf import HFRolloutEngine, concat_rollouts
from oneshot_rlvr.runfolder import RunFolder, write_atomic
from oneshot_rlvr.tracking import run_tracker
from oneshot_rlvr.train import dist
from oneshot_rlvr.train.critic import Critic, outcome_token_rewards
from oneshot_rlvr.train.data import EpochSampler, History, training_problems
from oneshot_rlvr.train.interrupt import StopRequest, TrainingInterrupted, resume_hint, stop_request
from oneshot_rlvr.train.metrics import MetricsLog, Timer, peak_memory_gb, progress_line
from oneshot_rlvr.train.state import (
    CRITIC_FILE,
    checkpoint_dirs,
    load_critic_state,
    resume_point,
    save_checkpoint,
    set_rng_state,
)
from oneshot_rlvr.train.update import (
    Batch,
    CriticState,
    TrainingDiverged,
    autocast,
    score_token_stats,
    score_tokens,
    update_policy,
)
from oneshot_rlvr.train.validate import Validator

log = logging.getLogger("oneshot_rlvr.train")

def pick_device(name: str) -> torch.device:
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RlvrError(f"setting device={name}: this PyTorch sees no CUDA GPU (CPU-only build or no driver); "
                        "use device=cpu or device=auto")
    if name in ("auto", "cuda"):  # one GPU per process: this rank's
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def advantages(rewards: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """(B, G) rewards -> (B, G) advantages by the configured outcome estimator (PPO: `_add_values_and_gae`)."""
    adv = outcome_advantages(rewards, cfg.algo, norm=cfg.adv_norm)
    return weight_positive(adv, cfg.pos_weight) if cfg.pos_weight != 1 else adv


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, engine: RolloutEngine | None = None,
          reward_fn: RewardFn | None = None, quiet: bool = False, save_final: bool = True) -> Path:
    """Run (or resume) RLVR training into `out_dir`; returns the run folder.

    `engine` and `reward_fn` replace the Hugging Face engine and the `reward` setting (tests, benchmarks);
    `save_final=False` skips the checkpoint after the last step (benchmarks).
    """
    cfg.validate()  # bad settings fail before any device or model work (again below, with the world size)
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    info = dist.init(device)
    try:
        reward = resolve_reward(cfg.reward, random_p=cfg.random_reward_p, entropy_level=cfg.entropy_reward_level,
                                fn=reward_fn)
        with stop_request() as stop:
            return _train(cfg, Path(out_dir), resume, engine, reward, quiet, device, info, save_final, stop)
    except KeyboardInterrupt as err:
        if isinstance(err, TrainingInterrupted):
            raise
        kept = checkpoint_dirs(Path(out_dir))
        raise TrainingInterrupted(resume_hint(Path(out_dir), kept[-1][1] if kept else None)) from None
    finally:
        dist.shutdown(info)


def _generate(engine: RolloutEngine, prompts: list[str], cfg: TrainConfig, step: int, first_prompt: int,
              sampling: SamplingParams) -> Rollouts:
    """Rollouts in chunks seeded by (seed, step, chunk): identical however the batch is split over ranks."""
    per_chunk = max(1, cfg.rollout_batch_rows // cfg.n)
    parts = []
    for start in range(0, len(prompts), per_chunk):
        chunk_id = (first_prompt + start) // per_chunk
        seed = (cfg.seed * 1_000_003 + step * 10_007 + chunk_id) % 2**63
        parts.append(engine.generate(prompts[start : start + per_chunk], cfg.n, sampling, seed=seed))
    return concat_rollouts(parts)


def _train(cfg: TrainConfig, out: Path, resume: bool, engine: RolloutEngine | None, reward: Reward,
           quiet: bool, device: torch.device, info: dist.DistInfo, save_final: bool, stop: StopRequest) -> Path:
    cfg.validate(info.world)
    # auto becomes bf16 or none here, so config.yaml (written below) records what ran and a resume keeps it.
    chosen = resolve_autocast(cfg.autocast, device)
    if cfg.autocast == "auto" and info.main:
        log.info("autocast=auto on %s: %s", describe(device),
                 "bf16" if chosen == "bf16" else "float32 (no native bf16 matmul)")
    cfg = with_absolute_paths(dataclasses.replace(cfg, autocast=chosen))  # a resume may start anywhere
    if info.enabled and cfg.reward == "math":
        # Each rank grades its own share: split the cores between ranks rather than 8 workers each.
        from oneshot_rlvr.reward import GraderConfig, configure

        configure(GraderConfig(workers=max(1, (os.cpu_count() or 1) // info.world)))
    start_step, state, source = 0, None, cfg.model
    point = resume_point(out, trust=cfg.trust_checkpoint) if resume else None
    if point is not None:
        start_step, checkpoint, state = point
        source = str(checkpoint)
    elif resume and info.main:
        log.warning("%s: no checkpoint to resume from; starting from step 0", out)
    elif not resume and RunFolder(out).holds_run():
        raise RlvrError(f"{out}: already holds a run; pass --resume to continue it or choose a new --out")
    torch.manual_seed(cfg.seed)
    problems = training_problems(cfg)
    tokenizer = load_tokenizer(cfg.model)
    prompts = [render_prompt(p.prompt, cfg.template, tokenizer) for p in problems]
    for p, text in zip(problems, prompts, strict=True):
        if len(tokenizer(text, add_special_tokens=False).input_ids) > cfg.max_prompt_tokens:
            raise RlvrError(f"training problem {p.id}: prompt longer than max_prompt_tokens={cfg.max_prompt_tokens}")
    options = cfg.load_options(device.type)
    if cfg.lora_r:  # LoRA checkpoints hold the adapter; the base weights come from cfg.model
        model = load_model(cfg.model, options, device, adapter=source if state is not None else None)
    else:
        model = load_model(source, options, device)
    model.train()
    ref = None
    if cfg.kl_coef > 0 and cfg.lora_r == 0:  # (LoRA's reference is the base model with adapters off)
        # The reference is the initial model, also when resuming; it only ever runs without gradients, so
        # under bf16 autocast it is kept in bf16 (half the memory of a float32 copy).
        ref = load_model(cfg.model, options, device) if state is not None else copy.deepcopy(model)
        ref = ref.eval().requires_grad_(False)
        if cfg.autocast == "bf16":
            ref = ref.to(torch.bfloat16)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _adamw(params, cfg.lr, cfg, device)
    critic = None
    if cfg.algo == "ppo":
        # The critic is a fresh value head on the base weights: all of them trained, default attention.
        critic_options = LoadOptions(dtype=options.dtype)
        critic_model = Critic(load_model(cfg.model, critic_options, device)).train()
        if state is not None:
            critic_model.load_state_dict(load_critic_state(Path(source)))
        else:
            dist.broadcast_parameters(critic_model, info)
        critic = CriticState(critic_model, _adamw(list(critic_model.parameters()), cfg.critic_lr, cfg, device))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)
    sampler = EpochSampler(len(problems), cfg.seed)
    history = History()
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if critic is not None:
            critic.optimizer.load_state_dict(state["critic_optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.position.epoch, sampler.position.offset = state["data_position"]
        history = History.from_state(state["history"])
        set_rng_state(state["rng"])
    else:
        dist.broadcast_parameters(model, info)
    rollout_dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}.get(
        cfg.rollout_dtype, torch.bfloat16 if device.type == "cuda" else None)
    own_engine = engine is None
    cfg = dataclasses.replace(cfg, stop=resolved_stop(cfg.stop, tokenizer, model))  # config.yaml: what stopped
    graphs = None if cfg.rollout_cuda_graphs else False  # (None: on CUDA)
    engine = engine or HFRolloutEngine(model, tokenizer, max_batch_rows=cfg.rollout_batch_rows, dtype=rollout_dtype,
                                       processes=cfg.rollout_processes, graphs=graphs, stop=cfg.stop)
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                              max_new_tokens=cfg.max_new_tokens)
    validate = bool(cfg.val_file) and cfg.val_every > 0  # val_every=0: validation off
    validator = Validator.from_config(cfg, tokenizer, out if info.main else None) if validate else None
    metrics_log = None
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, RunFolder(out).config)
        tracker = run_tracker(dataclasses.asdict(cfg), out, resume=resume, purge_after=start_step if resume else None)
        metrics_log = MetricsLog(RunFolder(out).metrics, resume_step=start_step if resume else None, tracker=tracker)
    if validator is not None and cfg.val_every > 0 and start_step == 0 and metrics_log is not None:
        validator.before_training(model, metrics_log)  # the official run's val_before_train=True
    single_update = cfg.ppo_epochs == 1 and cfg.mini_batch_size == cfg.batch_size
    if single_update and info.main:
        log.info("one update per rollout batch: old log-probs equal the current ones, skipping that forward pass")
    per_rank = cfg.batch_size // info.world
    bar = _progress(cfg.steps, start_step, quiet or not info.main)
    saved_step = start_step
    for step in range(start_step + 1, cfg.steps + 1):
        timer = Timer()
        rows = sampler.next_batch(cfg.batch_size)
        mine = rows[info.rank * per_rank : (info.rank + 1) * per_rank]
        my_problems = [problems[r] for r, _ in mine]
        with timer("generate"), torch.no_grad(), autocast(cfg, device):
            engine.sync(model)
            try:
                roll = _generate(engine, [prompts[r] for r, _ in mine], cfg, step, info.rank * per_rank, sampling)
            except RuntimeError as err:  # sampling from inf/nan probabilities: the weights blew up
                if "inf" in str(err) or "nan" in str(err):
                    raise TrainingDiverged(f"step {step}: sampling failed on non-finite probabilities ({err})") from err
                raise
        batch = Batch(roll.input_ids, roll.attention_mask, roll.full_response_mask, torch.zeros(len(roll)))
        stats = None
        if reward.needs_token_stats:  # the old-policy scoring pass, made here once for the reward and the loss
            with timer("logprobs_reward"):
                stats = TokenStats(*score_token_stats(model, batch, cfg, device), batch.response_mask)
        with timer("score"):
            local_rewards, correct, reward_metrics = _score(reward, my_problems, roll, stats, cfg, step,
                                                            info.rank * per_rank * cfg.n)
            rewards = dist.all_gather_cat(local_rewards.to(device), info).cpu()
            accuracy = rewards if correct is None else dist.all_gather_cat(correct.to(device), info).cpu()
            accuracy = accuracy > 0.5
        if critic is None:  # (PPO's advantages come from its critic, below)
            batch.adv = advantages(rewards, cfg)[info.rank * per_rank : (info.rank + 1) * per_rank].reshape(-1)
        if cfg.mask_truncated:
            truncated = torch.tensor([r == "length" for r in roll.finish_reasons])
            batch.response_mask = truncation_mask(batch.response_mask, truncated)
        with timer("logprobs"):
            if critic is not None:
                _add_values_and_gae(critic.model, batch, local_rewards.reshape(-1), cfg, device)
            if ref is not None or (cfg.kl_coef > 0 and cfg.lora_r):
                batch.ref_logp = _reference_logp(model, ref, batch, cfg, device)
            if not single_update:
                batch.old_logp = stats.logp if stats is not None else score_tokens(model, batch, cfg, device)
        with timer("update"):
            update_stats = update_policy(model, optimizer, scheduler, batch, cfg, info, device, step, critic)
        for (r, epoch), acc in zip(rows, accuracy.float().mean(dim=1).tolist(), strict=True):
            history.add(problems[r].id, epoch, acc * cfg.n, cfg.n)
        history.close_epochs_before(sampler.position.epoch)
        row = _metrics_row(step, rewards, roll, update_stats, timer, device, info, optimizer, sampler.position.epoch)
        row["train_accuracy"] = float(accuracy.float().mean())
        row["frac_zero_std"] = frac_zero_std(rewards)
        row.update({k: dist.all_sum(v, info, device) / info.world for k, v in reward_metrics.items()})
        if validator is not None and (step % cfg.val_every == 0 or step == cfg.steps) and info.main:
            row.update(validator.run(model, step))
        if (step % max(cfg.save_every, 1) == 0 and cfg.save_every > 0) or step == cfg.steps:
            _save(out, step, model, tokenizer, optimizer, scheduler, sampler, history, cfg, info, critic)
            saved_step = step
        if info.main and metrics_log is not None:
            metrics_log.append(row)
            write_atomic(RunFolder(out).history, json.dumps(history.values))
            _report(bar, row)
        # Ctrl-C on any rank: every rank stops after this step, with it saved.
        if step < cfg.steps and dist.all_sum(float(stop.requested), info, device) > 0:
            if saved_step != step:
                _save(out, step, model, tokenizer, optimizer, scheduler, sampler, history, cfg, info, critic)
            raise TrainingInterrupted(f"stopped after step {step}; "
                                      + resume_hint(out, RunFolder(out).checkpoint(step)))
    if bar is not None:
        bar.close()
    if metrics_log is not None:
        metrics_log.close()  # the trackers' runs end with the run
    if own_engine:
        engine.close()  # its sampling processes, if any (after an error they end with the engine or this process)
    log.info("run finished at step %d; checkpoint %s", cfg.steps, RunFolder(out).checkpoint(saved_step))
    return out


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


def _adamw(params: list[torch.nn.Parameter], lr: float, cfg: TrainConfig, device: torch.device) -> Any:
    return torch.optim.AdamW(params, lr=lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                             foreach=device.type != "cuda", fused=device.type == "cuda" or None)


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


def _save(out: Path, step: int, model: Any, tokenizer: Any, optimizer: Any, scheduler: Any,
          sampler: EpochSampler, history: History, cfg: TrainConfig, info: dist.DistInfo,
          critic: CriticState | None) -> None:
    dist.check_in_sync([p for p in model.parameters() if p.requires_grad], info)
    if info.main:
        state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "data_position": (sampler.position.epoch, sampler.position.offset),
                 "history": history.state(), "config": cfg.__dict__.copy()}
        extra = {}
        if critic is not None:
            state["critic_optimizer"] = critic.optimizer.state_dict()
            extra[CRITIC_FILE] = critic.model.state_dict()
        save_checkpoint(out, step, model, tokenizer, state, keep=cfg.keep_checkpoints, extra=extra,
                        keep_state=cfg.keep_trainer_state)
    dist.barrier(info)


def _metrics_row(step: int, rewards: torch.Tensor, roll: Rollouts, stats: dict[str, float], timer: Timer,
                 device: torch.device, info: dist.DistInfo, optimizer: Any, epoch: int) -> dict[str, Any]:
    lengths = roll.response_lengths.float()
    new_tokens = dist.all_sum(float(lengths.sum()), info, device)
    step_s = sum(timer.seconds.values())
    truncated = dist.all_sum(float(sum(r == "length" for r in roll.finish_reasons)), info, device)
    rows = dist.all_sum(float(len(roll)), info, device)
    return {
        "step": step, "epoch": epoch,
        "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "train_accuracy": float((rewards > 0.5).float().mean()),
        **stats,
        "response_length_mean": new_tokens / max(rows, 1.0),
        "response_length_max": float(lengths.max()) if len(lengths) else 0.0,
        "truncation_rate": truncated / max(rows, 1.0),
        "tokens_per_s": new_tokens / max(timer.seconds.get("generate", 0.0), 1e-9),
        **{f"time_{k}": v for k, v in timer.seconds.items()}, "time_step": step_s,
        "peak_memory_gb": peak_memory_gb(device), "lr": optimizer.param_groups[0]["lr"],
    }


def _progress(total: int, start: int, disabled: bool) -> Any:
    if disabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc="rlvr train", unit="step", dynamic_ncols=True)


def _report(bar: Any, row: dict[str, Any]) -> None:
    if bar is None:
        log.info(progress_line(row))
        return
    postfix = {"reward": f"{row['reward_mean']:.3f}", "acc": f"{row['train_accuracy']:.2f}"}
    if "val_accuracy" in row:
        postfix["val"] = f"{row['val_accuracy']:.3f}"
    bar.set_postfix(postfix)
    bar.update(1)
    if not math.isfinite(row.get("loss", 0.0)):
        bar.write(progress_line(row))
