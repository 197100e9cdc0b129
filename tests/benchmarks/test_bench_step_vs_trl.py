"""benchmarks/step_vs_trl.py: a tiny run of our side end to end, and the report's arithmetic (the floors' own:
test_bench_floors.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from bench_scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_vs_trl.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("step_vs_trl")


def test_our_side_runs_end_to_end_and_reports_the_floor(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--only", "ours", "--rounds", "1", "--warmup", "0",
         "--steps", "1", "--prompts", "2", "--samples", "2", "--tokens", "8", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ours_new_tokens"] == 4 * 8  # every row forced to the full length
    assert summary["copy_bandwidth_gbs"] > 0 and summary["ours_decode_floor_s"] > 0
    # Each phase has a floor and its time against it (whether the time is above its floor depends on this
    # machine's load: the report says, this test does not assert it); the step's floor is their sum.
    assert summary["matmul_gflops_sampling"] > 0 and summary["matmul_gflops_train"] > 0
    for phase in ("generate", "logprobs", "update"):
        assert summary[f"ours_{phase}_floor_s"] > 0
    ratios = summary["ours_vs_floor"]
    assert set(ratios) == {"generate", "logprobs", "update", "step"}
    assert all(math.isfinite(r) and r > 0 for r in ratios.values()), ratios
    assert set(summary["ours_below_floor"]) <= set(ratios)
    assert summary["ours_step_floor_s"] == pytest.approx(
        sum(summary[f"ours_{phase}_floor_s"] for phase in ("generate", "logprobs", "update")))
    assert summary["ours_step_vs_floor"] == pytest.approx(summary["ours_step_s"] / summary["ours_step_floor_s"])
    assert "ratio_at_floor" not in summary  # (needs TRL's step)
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


def test_report_gives_each_phase_s_floor_and_the_ratio_at_the_floor(bench: ModuleType,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # A 1e9-FLOP forward at 10 GFLOP/s sampling and 20 training; reads: 100 B of weights over 16 steps at 1e-9 GB/s.
    floor_inputs = {"weight_bytes": 100.0, "kv_bytes_per_token": 0.0, "prompt_tokens": 4, "bandwidth_gbs": 1e-9,
                    "forward_flops": 1e9, "gflops_sampling": 10.0, "gflops_train": 20.0}
    ours = {"step_s": [2.0], "generate_s": [1.0], "logprobs_s": [0.2], "update_s": [0.8], "new_tokens": [64.0],
            "peak_gb": 1.0, **floor_inputs}
    trl = {"step_s": [4.0], "generate_s": [3.0], "new_tokens": [64.0], "peak_gb": 1.0}
    args = bench.argparse.Namespace(device="cpu", workload="forced", prompts=2, samples=2, tokens=16, json=True,
                                    autocast="none", rollout_dtype="fp32")
    bench.report(args, {"ours": [ours], "trl": [trl]})
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ours_decode_floor_s"] == pytest.approx(16 * 100.0)  # the reads: slower than the arithmetic here
    assert summary["ours_generate_floor_s"] == pytest.approx(1600.0)
    assert summary["ours_logprobs_floor_s"] == pytest.approx(0.05)
    assert summary["ours_update_floor_s"] == pytest.approx(0.15)
    assert summary["ours_step_floor_s"] == pytest.approx(1600.2)
    assert summary["ratio_at_floor"] == pytest.approx(1600.2 / 4.0)
    assert summary["ours_vs_floor"] == pytest.approx(
        {"generate": 1.0 / 1600.0, "logprobs": 0.2 / 0.05, "update": 0.8 / 0.15, "step": 2.0 / 1600.2})
    assert summary["ours_below_floor"] == ["generate", "step"]  # (the bandwidth given here is absurdly low)


def test_pi1_workload_runs_our_side_both_ways(tmp_path: Path) -> None:
    """The pi1 shape at a toy size: fewer slots than rows, continuous and chunked alternating."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--workload", "pi1", "--only", "ours", "--ab-chunked",
         "--rounds", "1", "--warmup", "0", "--steps", "1", "--prompts", "2", "--samples", "4", "--tokens", "16",
         "--slots", "3", "--autocast", "none", "--rollout-dtype", "fp32", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["workload"] == "pi1" and summary["slots"] == 3 and summary["shape"] == "2x4x16"
    assert summary["generate_speedup_vs_chunked"] == pytest.approx(
        summary["ours-chunked_generate_s"] / summary["ours_generate_s"])
    assert len(summary["generate_speedup_per_round"]) == 1
    # Each row samples from its own stream either way: the same work on both sides.
    assert summary["ours_new_tokens"] == pytest.approx(summary["ours-chunked_new_tokens"], rel=0.1)
    assert 0 < summary["ours_new_tokens"] < 8 * 16  # long-tailed: not every row ran to the cap
    assert summary["ours_decode_steps"] > 0 and summary["ours-chunked_decode_steps"] > 0
