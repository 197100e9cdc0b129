"""Pretraining recipe of the tiny world model: a Qwen2-architecture decoder learns the corpus.

Documents (prompt + response) are packed whole into fixed-length rows; the loss covers response
tokens only, because the questions' random numbers are unpredictable and would spend the small
budget on noise. Every step's documents come from a stream seeded by (seed, step), so a resumed run
sees exactly the data an uninterrupted run would. The run folder holds the tokenizer files from the
start, `checkpoint.pt` every `checkpoint_every` steps, `log.jsonl`, and at the end the model in
bfloat16 safetensors plus `pretrain.json` (settings, tokens, wall time, throughput).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import write_atomic
from oneshot_rlvr.world.corpus import CorpusMix, iter_documents

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    """Settings of `rlvr world pretrain` (the bundled model's two-phase recipe is in `oneshot_rlvr.world`)."""

    tokens: int = 7_500_000
    """Training tokens (prompt and response tokens of the packed rows, padding excluded)."""
    seed: int = 0
    """Seeds the tokenizer sample, the initial weights and the document stream."""
    device: str = "cpu"
    """cpu or cuda (float32 master weights either way)."""
    autocast: str = "auto"
    """bf16, none, or auto: bf16 where the device multiplies bf16 natively (the bundled model was pretrained under
    bf16 autocast), float32 elsewhere (`oneshot_rlvr.models.precision`); `pretrain` records the choice."""
    threads: int = 0
    """CPU threads for torch (0 keeps torch's default); one thread is steadier on a busy shared machine."""
    vocab_size: int = 1024
    """Byte-level BPE vocabulary (digits are always single tokens)."""
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    seq_len: int = 512
    """Length of a packed row; documents are never split across rows."""
    batch_rows: int = 8
    """Rows per optimizer step."""
    lr: float = 2e-3
    """Peak learning rate (linear warm-up, then cosine decay to `min_lr_ratio` of it)."""
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    tokenizer_docs: int = 20_000
    """Documents sampled to train the tokenizer."""
    checkpoint_every: int = 100
    """Optimizer steps between resumable checkpoints."""
    log_every: int = 20
    init_from: str = ""
    """A model folder to continue from (its weights and tokenizer; the model-shape settings are then
    ignored); empty starts from random weights."""
    mix: CorpusMix = field(default_factory=CorpusMix)
    """The corpus mix (see `oneshot_rlvr.world.corpus.CorpusMix`)."""

    def model_overrides(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size,
                "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
                "num_key_value_heads": self.num_key_value_heads, "max_position_embeddings": 1024}


def build_world_tokenizer(config: PretrainConfig) -> Any:
    """The world's tokenizer, trained on a sample of the corpus (deterministic for the seed)."""
    from oneshot_rlvr.models.tiny import train_tokenizer

    docs = itertools.islice(iter_documents(f"tokenizer/{config.seed}", config.mix), config.tokenizer_docs)
    return train_tokenizer((d.prompt + d.response for d in docs), vocab_size=config.vocab_size)


def pack_batch(tokenizer: Any, config: PretrainConfig, step: int) -> tuple[Any, Any, int]:
    """Rows of whole documents for one step: (input_ids, labels, real tokens); labels mask prompts."""
    import torch

    pad = tokenizer.pad_token_id
    docs = iter_documents(f"{config.seed}/{step}", config.mix)
    ids = torch.full((config.batch_rows, config.seq_len), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    real = 0
    pending = None
    for row in range(config.batch_rows):
        pos = 0
        while True:
            if pending is None:
                doc = next(docs)
                p = tokenizer(doc.prompt, add_special_tokens=False)["input_ids"]
                r = tokenizer(doc.response, add_special_tokens=False)["input_ids"]
                pending = (p, r)
            p, r = pending
            n = len(p) + len(r)
            if n > config.seq_len:
                raise RlvrError(f"a document of {n} tokens does not fit seq_len {config.seq_len}")
            if pos + n > config.seq_len:
                break  # this document opens the next row
            ids[row, pos:pos + n] = torch.tensor(p + r)
            labels[row, pos + len(p):pos + n] = torch.tensor(r)
            pos, real, pending = pos + n, real + n, None
    return ids, labels, real


def _lr_at(config: PretrainConfig, step: int, total_steps: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _settings(config: PretrainConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    for machine_only in ("device", "threads", "log_every", "checkpoint_every"):
        out.pop(machine_only)
    return out


def pretrain(config: PretrainConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train (or resume) the world model into `out_dir`; returns the summary written to pretrain.json."""
    import torch

    from oneshot_rlvr.models.precision import resolve_autocast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RlvrError("--device cuda: no CUDA device is available")
    device = torch.device(config.device)
    # (resolved before the settings are compared or recorded: a checkpoint made in another precision is refused)
    config = dataclasses.replace(config, autocast=resolve_autocast(config.autocast, device))
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    # The checkpoint is read and checked before anything is written: a refused one leaves the folder as it was.
    ckpt = out / "checkpoint.pt"
    state = _load_checkpoint(ckpt, device) if ckpt.exists() else None
    # (checkpoints from before the autocast setting always ran under bf16 autocast)
    if state is not None and {"autocast": "bf16", **state["settings"]} != _settings(config):
        raise RlvrError(f"{ckpt}: made with other settings; use another --out or delete the checkpoint")
    tokenizer, model = _initial_model(config)
    tokenizer.save_pretrained(out)
    model.to(device)
    opt = _optimizer(model, config)
    tokens_per_step = config.batch_rows * config.seq_len
    total_steps = max(1, math.ceil(config.tokens / (0.9 * tokens_per_step)))  # rows are ~90% full
    step, seen, elapsed = 0, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, seen, elapsed = state["step"], state["tokens"], state["elapsed"]
        log.info("resuming at step %d (%d tokens, %.0f s)", step, seen, elapsed)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("model: %.2fM parameters; ~%d steps of %d rows x %d", n_params / 1e6, total_steps,
             config.batch_rows, config.seq_len)
    start, start_seen = time.time() - elapsed, seen
    model.train()
    with open(out / "log.jsonl", "a") as log_file:
        while seen < config.tokens:
            ids, labels, real = pack_batch(tokenizer, config, step)
            for group in opt.param_groups:
                group["lr"] = _lr_at(config, step, total_steps)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.autocast == "bf16"):
                loss = model(input_ids=ids.to(device), labels=labels.to(device)).loss
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, seen = step + 1, seen + real
            if step % config.log_every == 0 or seen >= config.tokens:
                wall = time.time() - start
                row = {"step": step, "tokens": seen, "loss": round(loss.item(), 4),
                       "grad_norm": round(float(grad_norm), 3), "lr": opt.param_groups[0]["lr"],
                       "wall_s": round(wall, 1), "tokens_per_s": round((seen - start_seen) / max(wall - elapsed, 1e-9))}
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
                log.info("step %d  tokens %d  loss %.4f  %d tok/s", step, seen, row["loss"], row["tokens_per_s"])
            if step % config.checkpoint_every == 0 and seen < config.tokens:
                _save_checkpoint(ckpt, model, opt, config, step, seen, time.time() - start)
    return _finish(out, model, tokenizer, config, step, seen, time.time() - start)


def _initial_model(config: PretrainConfig) -> tuple[Any, Any]:
    """(tokenizer, model): the world's own tokenizer and a fresh tiny Qwen2, or a model folder to continue."""
    import torch
    from transformers import Qwen2ForCausalLM

    from oneshot_rlvr.models.tiny import tiny_qwen2_config

    if config.init_from:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(config.init_from)
            return tokenizer, Qwen2ForCausalLM.from_pretrained(config.init_from, dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise RlvrError(f"--init {config.init_from}: not a model folder ({err})") from None
    tokenizer = build_world_tokenizer(config)
    model_config = tiny_qwen2_config(len(tokenizer), bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id, **config.model_overrides())
    return tokenizer, Qwen2ForCausalLM(model_config)


def _optimizer(model: Any, config: PretrainConfig) -> Any:
    """AdamW with weight decay on the matrices only (not on norms and biases)."""
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))


def _finish(out: Path, model: Any, tokenizer: Any, config: PretrainConfig, step: int, seen: int,
            wall: float) -> dict[str, Any]:
    """Save the model (bf16) and pretrain.json, drop the resume checkpoint; returns the summary."""
    import torch
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    model.to(torch.bfloat16).save_pretrained(out)
    earlier = Path(config.init_from, "pretrain.json") if config.init_from else None
    summary = {"parameters": n_params, "steps": step, "tokens": seen, "wall_seconds": round(wall, 1),
               "tokens_per_second": round(seen / max(wall, 1e-9)), "device": config.device,
               "torch_threads": torch.get_num_threads(), "settings": _settings(config)}
    if earlier is not None and earlier.exists():
        summary["continues"] = json.loads(earlier.read_text())
    (out / "pretrain.json").write_text(json.dumps(summary, indent=2) + "\n")
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        ckpt.unlink()
    return summary


def _load_checkpoint(path: Path, device: Any) -> dict[str, Any]:
    """The checkpoint's tensors and plain data; weights_only=True refuses any other pickled object, so
    opening someone else's half-finished pretraining folder never runs code."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        reason = f"it holds a pickled Python object ({refused.group(1)})" if refused else "damaged"
        raise RlvrError(f"{path}: refused ({reason}); it should hold tensors and plain data alone, "
                        "delete it to start over") from None
    except Exception as err:  # torch reports a damaged file as RuntimeError, KeyError, EOFError, ...
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise RlvrError(f"{path}: damaged ({first}); delete it to start over") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "step", "tokens", "elapsed", "settings"} <= set(state):
        raise RlvrError(f"{path}: not a pretraining checkpoint; delete it to start over")
    return state


def _save_checkpoint(path: Path, model: Any, opt: Any, config: PretrainConfig, step: int, seen: int,
                     elapsed: float) -> None:
    import torch

    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "tokens": seen,
             "elapsed": elapsed, "settings": _settings(config)}
    write_atomic(path, lambda f: torch.save(state, f))  # an interrupted save never clobbers the previous one
