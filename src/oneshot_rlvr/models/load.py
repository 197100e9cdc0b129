"""Load a causal LM and its tokenizer from a local folder, a hub id, or a built-in name.

`builtin:tiny` names the bundled tiny math model (the registry is `models.builtin`). Offline, a model that
is neither a local folder nor cached gives one clear line naming it instead of a hub traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError, install_hint
from oneshot_rlvr.models.builtin import resolve_model_path

log = logging.getLogger(__name__)

@dataclass
class LoadOptions:
    """How to load a model. Training makes these from its settings with `TrainConfig.load_options`; the
    defaults here are for loading a model to evaluate or sample from."""

    dtype: str = "float32"
    """Parameter dtype: float32 (master weights; pair with autocast), bfloat16, float16 or auto."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    lora_r: int = 0
    """LoRA rank; 0 trains all weights. LoRA needs `pip install peft`."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_targets: str = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    """Comma-separated module names LoRA adapts."""
    attn_implementation: str = "sdpa"
    """Attention kernel passed to transformers (sdpa, eager, flash_attention_2)."""
    trust_remote_code: bool = False
    """Allow model code from the hub (off by default)."""


def _dtype(name: str) -> Any:
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16, "auto": "auto"}
    if name not in table:
        raise RlvrError(f"unknown dtype {name!r} (choose from float32, bfloat16, float16, auto)")
    return table[name]


def _load_error(name: str, err: Exception) -> RlvrError:
    local = Path(name).expanduser()
    if local.exists():
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return RlvrError(f"cannot load model from {name}: {detail}")
    return RlvrError(
        f"model {name!r} is not a local folder and could not be fetched from the Hugging Face hub "
        f"(offline or unknown id); download it first or pass a local path"
    )


def load_tokenizer(name: str) -> Any:
    """The tokenizer, set up for batched generation: left padding and a pad token."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _load_error(path, err) from None
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, options: LoadOptions | None = None, device: Any = "cpu", *,
               adapter: str | None = None) -> Any:
    """The causal LM on `device`, optionally with LoRA adapters and gradient checkpointing.

    `adapter` resumes trained LoRA weights from a checkpoint folder instead of fresh ones.
    """
    from transformers import AutoModelForCausalLM

    opts = options or LoadOptions()
    path = resolve_model_path(name)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_dtype(opts.dtype), attn_implementation=opts.attn_implementation,
            trust_remote_code=opts.trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise _load_error(path, err) from None
    model.to(device)
    if opts.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # (transformers' name since it deprecated the other)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.config.use_cache = False
    if opts.lora_r > 0:
        model = _add_lora(model, opts, adapter)
    return model


def _add_lora(model: Any, opts: LoadOptions, adapter: str | None) -> Any:
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError:
        raise RlvrError(f"LoRA needs peft: {install_hint('lora')}") from None
    if opts.gradient_checkpointing:
        model.enable_input_require_grads()
    if adapter is not None:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    config = LoraConfig(
        r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
        target_modules=[t.strip() for t in opts.lora_targets.split(",") if t.strip()], task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def cache_keyword(model: Any) -> str:
    """The forward's KV-cache keyword: `cache` in recent transformers, `past_key_values` before the rename.

    A peft wrapper forwards **kwargs, so the model it wraps is asked."""
    import inspect

    base = getattr(model, "get_base_model", None)
    if callable(base):
        model = base()
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def stop_token_ids(tokenizer: Any, model: Any = None) -> list[int]:
    """Token ids that end a response by default: the `chat` stop set (`oneshot_rlvr.models.stops`), the
    tokenizer's EOS, the model's EOS ids, and chat end markers."""
    from oneshot_rlvr.models.stops import resolve_stop

    return resolve_stop("chat", tokenizer, model)
