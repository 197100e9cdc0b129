"""benchmarks/cuda_checks.sh, the prepared GPU script, as a dry run on the CPU at a toy size (TOY=1): each part
runs and leaves its JSON line, so a lent GPU's minutes go to measuring, not to fixing the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cuda_checks.sh"


def test_the_gpu_script_runs_on_a_cpu_at_a_toy_size(tmp_path: Path) -> None:
    env = {**os.environ, "TOY": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=900,
                          env=env, cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    forced = json.loads((tmp_path / "forced.log").read_text().strip().splitlines()[-1])
    assert forced["workload"] == "forced" and forced["shape"] == "2x2x8" and forced["ours_step_s"] > 0
    pi1 = json.loads((tmp_path / "pi1.log").read_text().strip().splitlines()[-1])
    assert pi1["workload"] == "pi1" and pi1["slots"] == 3 and pi1["generate_speedup_vs_chunked"] > 0
    assert pi1["ours_decode_steps"] > 0 and pi1["ours_peak_mem_gb"] > 0
    try:
        import trl  # noqa: F401
    except ImportError:
        assert "our side only" in (tmp_path / "notes.txt").read_text()
    else:
        assert "trl_step_s" in forced and "ratio" in forced
