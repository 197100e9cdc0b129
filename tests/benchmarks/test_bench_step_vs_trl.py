"""benchmarks/step_vs_trl.py: the decode floor's arithmetic, and a tiny run of our side end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_vs_trl.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("step_vs_trl", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tied", [True, False])
def test_decode_bytes_count_what_a_decode_step_reads(bench: ModuleType, tmp_path: Path, tied: bool) -> None:
    from transformers import AutoModelForCausalLM

    from oneshot_rlvr.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "m", num_attention_heads=4, num_key_value_heads=2,
                                 tie_word_embeddings=tied)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    embedding = model.get_input_embeddings().weight
    read = sum(p.numel() for p in model.parameters() if tied or p is not embedding)
    weights, kv = bench.model_decode_bytes(str(model_dir), 2)
    assert weights == 2 * read
    config = model.config
    assert kv == 2 * config.num_hidden_layers * 2 * config.num_key_value_heads * (
        config.hidden_size // config.num_attention_heads)


def test_decode_floor_reads_the_weights_every_step_and_the_growing_cache(bench: ModuleType) -> None:
    # 3 steps of 2 rows after a 4-token prompt: the cache holds 4, 5, 6 tokens per row when read.
    floor = bench.decode_floor_s(100.0, 10.0, rows=2, prompt_len=4, new_tokens=3, bandwidth_gbs=1e-9)
    assert floor == pytest.approx(3 * 100 + 10 * 2 * (4 + 5 + 6))
    # The H100 example: 512 steps over a 3.1 GB model at 3.35 TB/s is about half a second.
    assert bench.decode_floor_s(3.1e9, 0.0, 64, 128, 512, 3350.0) == pytest.approx(0.47, abs=0.01)


def test_our_side_runs_end_to_end_and_reports_the_floor(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--only", "ours", "--rounds", "1", "--warmup", "0",
         "--steps", "1", "--prompts", "2", "--samples", "2", "--tokens", "8", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ours_new_tokens"] == 4 * 8  # every row forced to the full length
    assert summary["copy_bandwidth_gbs"] > 0 and 0 < summary["ours_decode_floor_s"] < summary["ours_generate_s"]
    assert "ratio" not in summary  # one side only
    # Precision follows the trainer's autocast=auto: bf16 only where this CPU multiplies it natively.
    import torch

    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert (summary["autocast"], summary["rollout_dtype"]) == (("bf16", "bf16") if native else ("none", "fp32"))


def test_report_gives_the_ratio_of_medians_and_each_round_s_own(bench: ModuleType,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    def run(steps: list[float]) -> dict:
        return {"step_s": steps, "generate_s": [s / 2 for s in steps], "logprobs_s": [0.1] * len(steps),
                "update_s": [0.2] * len(steps), "new_tokens": [64.0] * len(steps), "peak_gb": 1.0}

    args = bench.argparse.Namespace(device="cpu", workload="longtail", prompts=2, samples=2, tokens=16, json=True,
                                    autocast="bf16", rollout_dtype="bf16")
    results = {"ours": [run([1.0, 1.5, 3.5]), run([4.0])], "trl": [run([4.0, 4.0, 4.0]), run([8.0])]}
    bench.report(args, results)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ours_step_s"] == 2.5 and summary["trl_step_s"] == 4.0  # medians over every timed step
    assert summary["ratio"] == 2.5 / 4.0  # (not the mean of the rounds' ratios, 0.4375)
    assert summary["ratio_per_round"] == [0.375, 0.5]  # (each round's medians: 1.5 / 4 and 4 / 8)
