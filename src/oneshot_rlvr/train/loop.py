"""The training loop of 1-shot RLVR: build the run, then step -> validate -> checkpoint -> log, until done.

`train.run` builds a `Run` (models, optimizer, data, outputs), `train.step` advances it one RL step
(rollouts -> rewards -> advantages -> update), `train.state` writes checkpoints. Everything it does is
decided by one `TrainConfig`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.reward.functions import Reward, RewardFn, resolve_reward
from oneshot_rlvr.rollout import RolloutEngine
from oneshot_rlvr.runfolder import RunFolder, write_atomic
from oneshot_rlvr.train import dist
from oneshot_rlvr.train.interrupt import StopRequest, TrainingInterrupted, resume_hint, stop_request
from oneshot_rlvr.train.metrics import progress_line
from oneshot_rlvr.train.run import Run, build_run, pick_device
from oneshot_rlvr.train.state import CRITIC_FILE, checkpoint_dirs, save_checkpoint
from oneshot_rlvr.train.step import train_step

log = logging.getLogger("oneshot_rlvr.train")


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, engine: RolloutEngine | None = None,
          reward_fn: RewardFn | None = None, quiet: bool = False, save_final: bool = True) -> Path:
    """Run (or resume) RLVR training into `out_dir`; returns the run folder.

    `engine` and `reward_fn` replace the Hugging Face engine and the `reward` setting (tests, benchmarks);
    `save_final=False` skips the checkpoint after the last step unless `save_every` falls on it (benchmarks).
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
            run = build_run(cfg, Path(out_dir), resume, info=info, device=device, engine=engine)
            return _train(run, reward, stop, quiet=quiet, save_final=save_final)
    except KeyboardInterrupt as err:
        if isinstance(err, TrainingInterrupted):
            raise
        kept = checkpoint_dirs(Path(out_dir))
        raise TrainingInterrupted(resume_hint(Path(out_dir), kept[-1][1] if kept else None)) from None
    finally:
        dist.shutdown(info)


def _train(run: Run, reward: Reward, stop: StopRequest, *, quiet: bool, save_final: bool) -> Path:
    cfg, info, out = run.cfg, run.info, run.out
    bar = _progress(cfg.steps, run.start_step, quiet or not info.main)
    saved_step = run.start_step
    for step in range(run.start_step + 1, cfg.steps + 1):
        row = train_step(run, reward, step)
        if run.validator is not None and (step % cfg.val_every == 0 or step == cfg.steps) and info.main:
            row.update(run.validator.run(run.model, step))
        periodic = cfg.save_every > 0 and step % cfg.save_every == 0
        if periodic or (step == cfg.steps and save_final):
            _save(run, step)
            saved_step = step
        if run.metrics_log is not None:
            run.metrics_log.append(row)
            write_atomic(RunFolder(out).history, json.dumps(run.history.values))
            _report(bar, row)
        # Ctrl-C on any rank: every rank stops after this step, with it saved.
        if step < cfg.steps and dist.all_sum(float(stop.requested), info, run.device) > 0:
            if saved_step != step:
                _save(run, step)
            raise TrainingInterrupted(f"stopped after step {step}; "
                                      + resume_hint(out, RunFolder(out).checkpoint(step)))
    if bar is not None:
        bar.close()
    if run.metrics_log is not None:
        run.metrics_log.close()  # the trackers' runs end with the run
    if run.own_engine:
        run.engine.close()  # its sampling processes, if any (after an error they end with the engine or this process)
    log.info("run finished at step %d; checkpoint %s", cfg.steps, RunFolder(out).checkpoint(saved_step))
    return out


def _save(run: Run, step: int) -> None:
    """A checkpoint of `step` (weights, tokenizer, trainer state) from the main process, all ranks in step."""
    dist.check_in_sync([p for p in run.model.parameters() if p.requires_grad], run.info)
    if run.info.main:
        state = {"step": step, "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                 "data_position": (run.sampler.position.epoch, run.sampler.position.offset),
                 "history": run.history.state(), "config": run.cfg.__dict__.copy()}
        extra = {}
        if run.critic is not None:
            state["critic_optimizer"] = run.critic.optimizer.state_dict()
            extra[CRITIC_FILE] = run.critic.model.state_dict()
        save_checkpoint(run.out, step, run.model, run.tokenizer, state, keep=run.cfg.keep_checkpoints, extra=extra,
                        keep_state=run.cfg.keep_trainer_state)
    dist.barrier(run.info)


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
