"""benchmarks/update_profile.py and decode_profile.py run end to end on a tiny batch (on CPU; on a GPU they are
run by cuda_checks.sh, where a broken script would waste the device's time)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--device", "cpu", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_update_profile_times_each_micro_batch_size_and_the_output_layer_s_share() -> None:
    rows = _run("update_profile.py", "--micro", "2", "4", "--rows", "4", "--tokens", "8")
    assert [r["micro"] for r in rows[:2]] == [2, 4]
    for row in rows[:2]:
        assert row["ref_share_True_s"] > 0 and row["ref_share_False_s"] > 0 and row["update_s"] > 0
    head = rows[2]
    assert head["head_positions"] == 4 * 8
    assert head["head_ref_s"] > 0 and head["head_update_s"] > 0


def test_decode_profile_gives_per_token_costs_for_each_batch_size() -> None:
    rows = _run("decode_profile.py", "--batch", "2", "1", "--tokens", "4")
    assert [r["batch"] for r in rows] == [2, 1]
    for row in rows:
        for key in ("step_ms", "step_sample_ms", "decode_look_every_1_ms", "decode_look_every_16_ms"):
            assert row[key] > 0


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_decode_profile_times_the_compiled_step_and_how_far_it_rounds_from_the_eager_one() -> None:
    rows = _run("decode_profile.py", "--batch", "2", "--tokens", "4", "--compile")
    eager, compiled, diff = rows
    assert "compiled" not in eager and compiled["compiled"] is True and compiled["batch"] == 2
    assert compiled["step_ms"] > 0 and compiled["warm_s"] > 0
    # bf16 logits of a random model: the fused kernels round differently, by a few units in the last place.
    assert 0 <= diff["compiled_max_logit_diff"] < 0.1
