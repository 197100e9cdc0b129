"""A bounded load test of a served model: N chat requests, K in flight, then GET /health.

By default it serves the bundled tiny model (chat template qwen25-math-cot) with `transformers serve` on
127.0.0.1 and a free port, sends world test problems greedily, and stops the server; `--url` loads an
already running server instead. Prints one JSON object: errors, throughput (requests/s and completion
tokens/s) and p50/p95 latency of the requests, and whether the server was still healthy afterwards.

    python benchmarks/serve_load.py --requests 200 --concurrency 16 --max-tokens 64
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --requests 200 --concurrency 16
    python benchmarks/serve_load.py --engine-arg=--continuous-batching
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from oneshot_rlvr.data.templates import render_prompt
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.endpoint import ChatMessages, EndpointEngine, EndpointError, EndpointOptions
from oneshot_rlvr.serve.server import healthy


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load_test(url: str, requests: int, concurrency: int, max_tokens: int) -> dict[str, Any]:
    from oneshot_rlvr.world.problems import generate_problems

    problems = generate_problems("test", requests)
    prompts = [render_prompt(p.question, "plain", ChatMessages()) for p in problems]
    engine = EndpointEngine(EndpointOptions(url, chat=True, max_in_flight=1, retries=0))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=max_tokens)
    engine.served_model  # noqa: B018 (asked once, before the clock starts)

    def one(prompt: str) -> tuple[float, int, str | None]:
        began = time.perf_counter()
        try:
            out = engine.generate([prompt], 1, sampling)
        except EndpointError as err:
            return time.perf_counter() - began, 0, str(err)
        return time.perf_counter() - began, int(out.response_mask.sum()), None

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, prompts))
    wall = time.perf_counter() - began
    latencies = [r[0] for r in results if r[2] is None]
    tokens = sum(r[1] for r in results)
    errors = [r[2] for r in results if r[2] is not None]
    return {
        "requests": requests, "concurrency": concurrency, "max_tokens": max_tokens, "errors": len(errors),
        "first_error": errors[0] if errors else None, "seconds": round(wall, 2),
        "requests_per_s": round(requests / wall, 3), "completion_tokens_per_s": round(tokens / wall, 1),
        "mean_completion_tokens": round(tokens / max(len(latencies), 1), 1),
        "latency_p50_s": round(percentile(latencies, 0.5), 2) if latencies else None,
        "latency_p95_s": round(percentile(latencies, 0.95), 2) if latencies else None,
        "healthy_after": healthy(url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an already running server (default: start transformers serve here)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--engine-arg", action="append", default=[], help="passed on to transformers serve")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = args.url
        if url is None:
            from oneshot_rlvr.serve.checkpoint import pick_checkpoint, served_copy
            from oneshot_rlvr.serve.server import ServerProcess, engine_command

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serve-load-")))
            folder, _ = served_copy(pick_checkpoint("builtin:tiny"), "qwen25-math-cot", tmp / "model")
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            url = f"http://127.0.0.1:{port}"
            cmd = engine_command("transformers", folder, host="127.0.0.1", port=port, device="cpu",
                                 extra=tuple(args.engine_arg))
            stack.enter_context(ServerProcess(cmd, url).start(300))
        print(json.dumps(load_test(url, args.requests, args.concurrency, args.max_tokens)))


if __name__ == "__main__":
    main()
