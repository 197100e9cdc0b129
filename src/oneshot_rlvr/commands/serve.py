"""`rlvr serve`: put a run's checkpoint (or any model folder) behind an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import tempfile
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError

HELP = "serve a run's checkpoint through an OpenAI-compatible API (transformers serve or vllm serve)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_CHECKPOINT",
                        help="training run folder, checkpoint/model folder, or builtin:tiny")
    parser.add_argument("--step", default="best",
                        help="with a run: best (highest validation accuracy; default), last, or a step number")
    parser.add_argument("--template", default="qwen25-math-cot",
                        help="prompt a plain user message gets, written as the served chat template: "
                             "qwen25-math-cot (evaluation; default), oneshot-train (training) or plain")
    parser.add_argument("--engine", default="transformers", choices=("transformers", "vllm"),
                        help="serving engine (default transformers; vllm on GPU machines)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    parser.add_argument("--device", default="auto", help="transformers engine: cpu, cuda, auto (default)")
    parser.add_argument("--copy-dir", metavar="DIR",
                        help="where to write the served copy (default: a temporary folder, removed on exit)")
    parser.add_argument("--startup-timeout", type=float, default=600.0, metavar="S",
                        help="seconds to wait for /health (default 600)")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the served copy and print the engine's command, without starting it")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="ARG",
                        help="passed on to the engine (repeatable): --engine-arg=--max-model-len --engine-arg=4096")


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM stop us, and so the server. SIGINT gets Python's own handler back even where the parent
    left it ignored (a process started in the background by a non-interactive shell inherits SIGINT ignored)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)


def _curl(url: str, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "What is 12 + 30?"}], "max_tokens": 512}
    return (f"curl {url}/v1/chat/completions -H 'Content-Type: application/json' "
            f"-d {shlex.quote(json.dumps(body))}")


def run(args: argparse.Namespace) -> int:
    from oneshot_rlvr.serve.checkpoint import pick_checkpoint, served_copy
    from oneshot_rlvr.serve.server import ServerProcess, check_engine, engine_command

    if not 0 < args.port < 65536:
        raise RlvrError(f"--port must be in 1..65535 (got {args.port})")
    choice = pick_checkpoint(args.source, args.step)
    print(choice.reason, flush=True)
    if not args.dry_run:
        check_engine(args.engine)
    with tempfile.TemporaryDirectory(prefix="rlvr-serve-") as tmp:
        folder, how = served_copy(choice, args.template, Path(args.copy_dir or Path(tmp) / "model").resolve())
        print(f"served copy {folder}: {how}; chat template {args.template}", flush=True)
        url = f"http://{args.host}:{args.port}"
        cmd = engine_command(args.engine, folder, host=args.host, port=args.port, device=args.device,
                             extra=tuple(args.engine_arg))
        if args.dry_run:
            print(shlex.join(cmd))
            return 0
        _interrupt_on_signals()
        server = ServerProcess(cmd, url)
        try:
            server.start(args.startup_timeout)
            print(f"serving {folder} at {url}/v1 (OpenAI-compatible); try:\n  {_curl(url, str(folder))}\n"
                  f"Ctrl-C stops it.", flush=True)
            assert server.proc is not None
            code = server.proc.wait()
            raise RlvrError(f"the server exited by itself with status {code}")
        except KeyboardInterrupt:
            status = server.stop()
            print(f"stopped the server (exit status {status})", flush=True)
            return 0
        finally:
            server.stop()
