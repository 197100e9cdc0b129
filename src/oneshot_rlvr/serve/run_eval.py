"""`rlvr eval --run RUN --serve-engine ENGINE`: each checkpoint evaluated through a server of its own.

For each selected step, a served copy is written (prompts are rendered by our tokenizer, so its chat
template is left as the model's), the engine is started on a free loopback port, the benchmarks run
through `evaluate_endpoint` into RUN/eval/<step>/ as in-process evaluation would write them, and the
server is stopped before the next step starts. Steps already evaluated are read back, as `evaluate_run` does.
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.benchmarks import Benchmark
from oneshot_rlvr.eval.curve import checkpoint_steps
from oneshot_rlvr.eval.run import EvalOptions, load_benchmarks
from oneshot_rlvr.eval.served import evaluate_endpoint
from oneshot_rlvr.rollout.endpoint import EndpointOptions
from oneshot_rlvr.serve.checkpoint import Choice, served_copy
from oneshot_rlvr.serve.server import ServerProcess, check_engine, engine_command

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _done(out: Path, wanted: set[str]) -> dict[str, Any] | None:
    done = out / "results.json"
    if done.exists() and (out / "records.jsonl").exists():
        previous: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
        if wanted <= set(previous.get("benchmarks", {})):
            return previous
    return None


def evaluate_run_served(
    run_dir: str | Path,
    benchmarks: Sequence[Benchmark],
    options: EvalOptions | None = None,
    *,
    engine: str = "transformers",
    every: int | None = None,
    device: str = "auto",
    max_in_flight: int = 16,
    startup_timeout_s: float = 600.0,
) -> list[tuple[int, dict[str, Any]]]:
    """(step, results) for the run's checkpoints (multiples of `every`), each evaluated through a server."""
    check_engine(engine)
    run = Path(run_dir)
    if not run.is_dir():
        raise RlvrError(f"{run}: no such run folder")
    steps = [(s, f) for s, f in checkpoint_steps(run) if not every or s % every == 0]
    if not steps:
        raise RlvrError(f"{run}/checkpoints: no step_N/ checkpoint folders")
    load_benchmarks(benchmarks, options)  # a missing file fails before any server starts
    wanted = {b.name for b in benchmarks}
    curve = []
    for step, folder in steps:
        out = run / "eval" / str(step)
        previous = _done(out, wanted)
        if previous is not None:
            log.info("step %d: already evaluated (%s); skipping", step, out / "results.json")
            curve.append((step, previous))
            continue
        with tempfile.TemporaryDirectory(prefix="rlvr-eval-serve-") as tmp:
            copy, how = served_copy(Choice(folder, step, f"step {step}", run), "plain", Path(tmp) / "model")
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log.info("step %d: serving %s (%s) at %s", step, folder, how, url)
            cmd = engine_command(engine, copy, host="127.0.0.1", port=port, device=device)
            with ServerProcess(cmd, url).start(startup_timeout_s):
                results = evaluate_endpoint(EndpointOptions(url, model=str(copy), max_in_flight=max_in_flight),
                                            benchmarks, options, out_dir=out, tokenizer=str(copy), step=step)
        curve.append((step, results))
    return curve
