"""benchmarks/floors.py: the arithmetic a step cannot avoid, counted against PyTorch's own FLOP counter."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from bench_scripts import load_script


@pytest.fixture(scope="module")
def floors() -> ModuleType:
    return load_script("floors")


@pytest.mark.parametrize("tied", [True, False])
def test_decode_bytes_count_what_a_decode_step_reads(floors: ModuleType, tmp_path: Path, tied: bool) -> None:
    from transformers import AutoModelForCausalLM

    from oneshot_rlvr.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "m", num_attention_heads=4, num_key_value_heads=2,
                                 tie_word_embeddings=tied)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    embedding = model.get_input_embeddings().weight
    read = sum(p.numel() for p in model.parameters() if tied or p is not embedding)
    weights, kv = floors.model_decode_bytes(str(model_dir), 2)
    assert weights == 2 * read
    config = model.config
    assert kv == 2 * config.num_hidden_layers * 2 * config.num_key_value_heads * (
        config.hidden_size // config.num_attention_heads)


def test_decode_floor_reads_the_weights_every_step_and_the_growing_cache(floors: ModuleType) -> None:
    # 3 steps of 2 rows after a 4-token prompt: the cache holds 4, 5, 6 tokens per row when read.
    floor = floors.decode_floor_s(100.0, 10.0, rows=2, prompt_len=4, new_tokens=3, bandwidth_gbs=1e-9)
    assert floor == pytest.approx(3 * 100 + 10 * 2 * (4 + 5 + 6))
    # The H100 example: 512 steps over a 3.1 GB model at 3.35 TB/s is about half a second.
    assert floors.decode_floor_s(3.1e9, 0.0, 64, 128, 512, 3350.0) == pytest.approx(0.47, abs=0.01)


def test_forward_flops_match_pytorch_s_count_of_the_model_s_matmuls(floors: ModuleType, tmp_path: Path) -> None:
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForCausalLM

    from oneshot_rlvr.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "m", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    config = floors.model_config(str(model_dir))
    layers, heads, head_dim = config["num_hidden_layers"], config["num_attention_heads"], 32 // 4
    prompt = 7
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.get_decoder()(input_ids=torch.zeros(1, prompt, dtype=torch.long))
    ops = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    linears = ops.get("aten.addmm", 0) + ops.get("aten.mm", 0)
    # Eager attention scores the whole square, masked half included; the floor counts the causal triangle.
    assert ops["aten.bmm"] == 4 * layers * heads * head_dim * prompt**2
    triangle = 4 * layers * heads * head_dim * prompt * (prompt + 1) // 2
    head = 2 * config["hidden_size"] * config["vocab_size"]  # one position predicts the first response token
    assert floors.forward_flops(config, rows=1, prompt_len=prompt, new_tokens=1) == linears + triangle + head

    # More rows and tokens: the prompt runs once, each row's own positions (not its last token) per row.
    per_token = linears // prompt
    per_key = 4 * layers * heads * head_dim
    rows, new = 3, 4  # each row's own positions 7, 8, 9 attend to 8, 9, 10 keys
    expected = (per_token * (prompt + rows * 3) + per_key * (prompt * (prompt + 1) // 2 + rows * (8 + 9 + 10))
                + head * (1 + rows * 3))
    assert floors.forward_flops(config, rows, prompt, new) == expected


def test_step_floors_take_the_slower_of_sampling_s_arithmetic_and_reads(floors: ModuleType) -> None:
    # 1e9 FLOPs a forward: sampling at 10 GFLOP/s (0.1 s) against 0.3 s of reads; training at 20 GFLOP/s.
    out = floors.step_floors(1e9, 10.0, 20.0, bandwidth_floor_s=0.3)
    assert out == pytest.approx({"generate": 0.3, "logprobs": 0.05, "update": 0.15, "step": 0.5})
    out = floors.step_floors(1e9, 10.0, 20.0, bandwidth_floor_s=0.01, reference=False)
    assert out == pytest.approx({"generate": 0.1, "logprobs": 0.0, "update": 0.15, "step": 0.25})


def test_matmul_rate_is_measured_in_the_dtype_asked(floors: ModuleType) -> None:
    assert floors.matmul_gflops("cpu", "fp32", size=64) > 0
    with pytest.raises(KeyError):
        floors.matmul_gflops("cpu", "fp16", size=64)
