"""Everything a training run holds between steps, and how it is built: `build_run(cfg, out, resume) -> Run`.

Setup is the part of training with the most cases (a fresh start or a resume, full weights or LoRA, a
reference model or none, PPO's critic, one process or several); it lives here so that the loop in
`train.loop` reads as the algorithm. The order of the steps below is the order in which random numbers are
drawn (the value head's initialisation, the broadcast of the initial weights), so it is kept as it is.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig, save_config, with_absolute_paths
from oneshot_rlvr.data import Problem, render_prompt
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import LoadOptions, load_model, load_tokenizer
from oneshot_rlvr.models.precision import describe, resolve_autocast
from oneshot_rlvr.models.stops import resolved_stop
from oneshot_rlvr.rollout import RolloutEngine, SamplingParams
from oneshot_rlvr.rollout.engine import make_engine
from oneshot_rlvr.runfolder import RunFolder
from oneshot_rlvr.tracking import run_tracker
from oneshot_rlvr.train import dist
from oneshot_rlvr.train.critic import Critic
from oneshot_rlvr.train.data import EpochSampler, History, training_problems
from oneshot_rlvr.train.metrics import MetricsLog
from oneshot_rlvr.train.state import load_critic_state, resume_point, set_rng_state
from oneshot_rlvr.train.update import CriticState
from oneshot_rlvr.train.validate import Validator

log = logging.getLogger("oneshot_rlvr.train")


@dataclass
class Run:
    """One training run in progress: its settings (as they ran), data, models, optimizer state and outputs.

    `metrics_log` is None on every process but the main one; `ref` is None without a KL term or under LoRA
    (whose reference is the base model with its adapters off); `critic` is PPO's alone.
    """

    cfg: TrainConfig
    out: Path
    info: dist.DistInfo
    device: torch.device
    problems: list[Problem]
    prompts: list[str]
    tokenizer: Any
    model: Any
    ref: Any | None
    optimizer: Any
    scheduler: Any
    critic: CriticState | None
    sampler: EpochSampler
    history: History
    engine: RolloutEngine
    own_engine: bool
    sampling: SamplingParams
    validator: Validator | None
    metrics_log: MetricsLog | None
    start_step: int

    @property
    def single_update(self) -> bool:
        """One update per rollout batch: the old log-probs equal the current ones (no forward pass for them)."""
        return self.cfg.ppo_epochs == 1 and self.cfg.mini_batch_size == self.cfg.batch_size

    @property
    def per_rank(self) -> int:
        """Prompts per step on each process."""
        return self.cfg.batch_size // self.info.world


def pick_device(name: str) -> torch.device:
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RlvrError(f"setting device={name}: this PyTorch sees no CUDA GPU (CPU-only build or no driver); "
                        "use device=cpu or device=auto")
    if name in ("auto", "cuda"):  # one GPU per process: this rank's
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def build_run(cfg: TrainConfig, out: Path, resume: bool, *, info: dist.DistInfo, device: torch.device,
              engine: RolloutEngine | None = None) -> Run:
    """Load (or restore, on `resume`) everything the loop needs; on the main process, write config.yaml, open
    the metrics log and validate the initial model."""
    cfg = _settings_as_run(cfg, device, info)
    start_step, source, state = _start_point(cfg, out, resume, info)
    torch.manual_seed(cfg.seed)
    problems = training_problems(cfg)
    tokenizer = load_tokenizer(cfg.model)
    prompts = _prompts(problems, cfg, tokenizer)
    model, ref = _policy_and_reference(cfg, source, state is not None, device)
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], cfg.lr, cfg, device)
    critic = _critic(cfg, source, state is not None, device, info) if cfg.algo == "ppo" else None
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)
    sampler, history = EpochSampler(len(problems), cfg.seed), History()
    if state is not None:
        history = _restore(state, optimizer, scheduler, critic, sampler)
    else:
        dist.broadcast_parameters(model, info)
    cfg = dataclasses.replace(cfg, stop=resolved_stop(cfg.stop, tokenizer, model))  # config.yaml: what stopped
    own_engine = engine is None
    engine = engine or make_engine(model, tokenizer, cfg)
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                              max_new_tokens=cfg.max_new_tokens)
    validate = bool(cfg.val_file) and cfg.val_every > 0  # val_every=0: validation off
    validator = Validator.from_config(cfg, tokenizer, out if info.main else None) if validate else None
    metrics_log = _open_outputs(cfg, out, resume, start_step) if info.main else None
    if validator is not None and start_step == 0 and metrics_log is not None:
        validator.before_training(model, metrics_log)  # the official run's val_before_train=True
    run = Run(cfg=cfg, out=out, info=info, device=device, problems=problems, prompts=prompts, tokenizer=tokenizer,
              model=model, ref=ref, optimizer=optimizer, scheduler=scheduler, critic=critic, sampler=sampler,
              history=history, engine=engine, own_engine=own_engine, sampling=sampling, validator=validator,
              metrics_log=metrics_log, start_step=start_step)
    if run.single_update and info.main:
        log.info("one update per rollout batch: old log-probs equal the current ones, skipping that forward pass")
    return run


def adamw(params: list[torch.nn.Parameter], lr: float, cfg: TrainConfig, device: torch.device) -> Any:
    return torch.optim.AdamW(params, lr=lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                             foreach=device.type != "cuda", fused=device.type == "cuda" or None)


def _settings_as_run(cfg: TrainConfig, device: torch.device, info: dist.DistInfo) -> TrainConfig:
    """The settings as this run uses them: checked against the world size, autocast resolved, paths absolute."""
    cfg.validate(info.world)
    # auto becomes bf16 or none here, so config.yaml records what ran and a resume keeps it.
    chosen = resolve_autocast(cfg.autocast, device)
    if cfg.autocast == "auto" and info.main:
        log.info("autocast=auto on %s: %s", describe(device),
                 "bf16" if chosen == "bf16" else "float32 (no native bf16 matmul)")
    if info.enabled and cfg.reward == "math":
        # Each rank grades its own share: split the cores between ranks rather than 8 workers each.
        from oneshot_rlvr.reward import GraderConfig, configure

        configure(GraderConfig(workers=max(1, (os.cpu_count() or 1) // info.world)))
    return with_absolute_paths(dataclasses.replace(cfg, autocast=chosen))  # a resume may start anywhere


def _start_point(cfg: TrainConfig, out: Path, resume: bool,
                 info: dist.DistInfo) -> tuple[int, str, dict[str, Any] | None]:
    """(first step - 1, where the weights come from, the trainer state or None for a fresh start)."""
    point = resume_point(out, trust=cfg.trust_checkpoint) if resume else None
    if point is not None:
        start_step, checkpoint, state = point
        return start_step, str(checkpoint), state
    if resume and info.main:
        log.warning("%s: no checkpoint to resume from; starting from step 0", out)
    elif not resume and RunFolder(out).holds_run():
        raise RlvrError(f"{out}: already holds a run; pass --resume to continue it or choose a new --out")
    return 0, cfg.model, None


def _prompts(problems: list[Problem], cfg: TrainConfig, tokenizer: Any) -> list[str]:
    prompts = [render_prompt(p.prompt, cfg.template, tokenizer) for p in problems]
    for p, text in zip(problems, prompts, strict=True):
        if len(tokenizer(text, add_special_tokens=False).input_ids) > cfg.max_prompt_tokens:
            raise RlvrError(f"training problem {p.id}: prompt longer than max_prompt_tokens={cfg.max_prompt_tokens}")
    return prompts


def _policy_and_reference(cfg: TrainConfig, source: str, resumed: bool, device: torch.device) -> tuple[Any, Any]:
    """The policy (from `source`: the base model or a checkpoint) in training mode, and the KL reference."""
    options = cfg.load_options(device.type)
    if cfg.lora_r:  # LoRA checkpoints hold the adapter; the base weights come from cfg.model
        model = load_model(cfg.model, options, device, adapter=source if resumed else None)
    else:
        model = load_model(source, options, device)
    model.train()
    ref = None
    if cfg.kl_coef > 0 and cfg.lora_r == 0:  # (LoRA's reference is the base model with adapters off)
        # The reference is the initial model, also when resuming; it only ever runs without gradients, so
        # under bf16 autocast it is kept in bf16 (half the memory of a float32 copy).
        ref = load_model(cfg.model, options, device) if resumed else copy.deepcopy(model)
        ref = ref.eval().requires_grad_(False)
        if cfg.autocast == "bf16":
            ref = ref.to(torch.bfloat16)
    return model, ref


def _critic(cfg: TrainConfig, source: str, resumed: bool, device: torch.device, info: dist.DistInfo) -> CriticState:
    """PPO's critic: a fresh value head on the base weights, all of them trained, default attention."""
    critic_model = Critic(load_model(cfg.model, LoadOptions(dtype=cfg.load_options(device.type).dtype),
                                     device)).train()
    if resumed:
        critic_model.load_state_dict(load_critic_state(Path(source)))
    else:
        dist.broadcast_parameters(critic_model, info)
    return CriticState(critic_model, adamw(list(critic_model.parameters()), cfg.critic_lr, cfg, device))


def _restore(state: dict[str, Any], optimizer: Any, scheduler: Any, critic: CriticState | None,
             sampler: EpochSampler) -> History:
    """A resume: the optimizers, the schedule, the data position and the random streams as they were saved;
    returns the accuracy history so far."""
    optimizer.load_state_dict(state["optimizer"])
    if critic is not None:
        critic.optimizer.load_state_dict(state["critic_optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.position.epoch, sampler.position.offset = state["data_position"]
    history = History.from_state(state["history"])
    set_rng_state(state["rng"])
    return history


def _open_outputs(cfg: TrainConfig, out: Path, resume: bool, start_step: int) -> MetricsLog:
    """The main process's outputs: config.yaml (the settings as run), the trackers and metrics.jsonl."""
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, RunFolder(out).config)
    tracker = run_tracker(dataclasses.asdict(cfg), out, resume=resume, purge_after=start_step if resume else None)
    return MetricsLog(RunFolder(out).metrics, resume_step=start_step if resume else None, tracker=tracker)
