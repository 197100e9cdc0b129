"""benchmarks/eval_throughput.py: a toy run of both loops on the world's test problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_throughput.py"


def test_both_loops_answer_the_same_problems_and_the_speedup_is_their_ratio() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--problems", "6", "--tokens", "8", "--rows", "2", "--rounds", "1", "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["continuous_new_tokens"] == summary["chunked_new_tokens"] > 0  # greedy: the same answers
    assert summary["same_answers"] is True and summary["continuous_peak_gb"] > 0 and summary["chunked_peak_gb"] > 0
    assert len(summary["speedup_per_round"]) == 1
    assert summary["speedup"] == pytest.approx(summary["chunked_s"] / summary["continuous_s"])
    assert summary["continuous_problems_per_s"] == pytest.approx(6 / summary["continuous_s"])
