"""make_engine: the settings that pick the rollout path reach the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout.engine import make_engine, rollout_dtype
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.hf import HFRolloutEngine


def _cfg(model_dir: Path, *extra: str):
    return resolve_config(None, None, [f"model={model_dir}", "problem=What is 2+3?", "answer=5", *extra])


@pytest.mark.parametrize(("setting", "continuous"), [("true", True), ("false", False)])
def test_continuous_batching_setting_picks_the_loop(tiny_model_dir: Path, setting: str, continuous: bool) -> None:
    model, tok = load_model(str(tiny_model_dir)), load_tokenizer(str(tiny_model_dir))
    cfg = _cfg(tiny_model_dir, f"continuous_batching={setting}", "rollout_batch_rows=24", "rollout_cuda_graphs=false")
    engine = make_engine(model, tok, cfg)
    assert isinstance(engine, FastRolloutEngine)  # (the tiny Qwen2 model samples through the CPU fast path)
    assert engine.continuous is continuous and engine.max_batch_rows == 24 and engine.graphs is False
    assert make_engine(model, tok, cfg, batch_rows=7).max_batch_rows == 7


def test_models_outside_the_fast_path_sample_through_their_own_forward(tiny_model_dir: Path) -> None:
    """A peft (LoRA) wrapper: the Hugging Face engine, with the rollout settings it takes."""
    from oneshot_rlvr.models.load import LoadOptions

    tok = load_tokenizer(str(tiny_model_dir))
    model = load_model(str(tiny_model_dir), LoadOptions(lora_r=4, lora_alpha=8))
    engine = make_engine(model, tok, _cfg(tiny_model_dir, "rollout_batch_rows=12", "rollout_dtype=bfloat16"))
    assert isinstance(engine, HFRolloutEngine) and engine.max_batch_rows == 12 and engine.dtype is torch.bfloat16
    assert make_engine(model, tok).dtype is None  # evaluation: the model's own dtype


def test_rollout_dtype_follows_the_setting_and_the_device(tiny_model_dir: Path) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = _cfg(tiny_model_dir)
    assert rollout_dtype(auto, cpu) is None and rollout_dtype(auto, cuda) is torch.bfloat16
    assert rollout_dtype(_cfg(tiny_model_dir, "rollout_dtype=bfloat16"), cpu) is torch.bfloat16
    assert rollout_dtype(_cfg(tiny_model_dir, "rollout_dtype=float32"), cuda) is torch.float32
