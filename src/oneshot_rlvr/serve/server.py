"""Run an existing OpenAI-compatible server on a model folder, as a child process.

`engine_command` says what runs: `transformers serve` (CPU or GPU; the [serve] extra)
or `vllm serve` (GPU machines where vLLM installs). `ServerProcess` starts it (its log goes to ours),
waits for GET /health, and stops it: SIGINT first, as Ctrl-C would, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from oneshot_rlvr.errors import RlvrError, install_hint

log = logging.getLogger(__name__)

ENGINES = ("transformers", "vllm")
INSTALL_HINT = {
    "transformers": install_hint("serve") + " (transformers serve needs fastapi and uvicorn)",
    "vllm": "pip install vllm (Linux with a CUDA GPU; see docs/serving.md)",
}


def check_engine(engine: str) -> None:
    """One line with the install hint when the engine cannot run here."""
    if engine not in ENGINES:
        raise RlvrError(f"unknown serving engine {engine!r} (choose from {', '.join(ENGINES)})")
    needed = ("fastapi", "uvicorn") if engine == "transformers" else ("vllm",)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise RlvrError(f"--engine {engine} needs {', '.join(missing)}: {INSTALL_HINT[engine]}")


def engine_command(engine: str, folder: Path, *, host: str, port: int, device: str = "auto",
                   name: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """The command line that serves `folder` at host:port (the model's name is the folder's path,
    or `name` where the engine can rename it)."""
    if engine == "transformers":
        # The CLI's own module, run by this interpreter: no dependence on PATH. Continuous batching: on 2 busy
        # CPU cores the tiny model gave 605 completion tokens/s with it and 2.7 without (docs/serving.md).
        cmd = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
               str(folder), "--host", host, "--port", str(port), "--device", device, "--continuous-batching"]
    elif engine == "vllm":
        cmd = [shutil.which("vllm") or "vllm", "serve", str(folder), "--host", host, "--port", str(port),
               "--served-model-name", name or str(folder), "--generation-config", "auto"]
    else:
        raise RlvrError(f"unknown serving engine {engine!r} (choose from {', '.join(ENGINES)})")
    return [*cmd, *extra]


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return False


class ServerProcess:
    """A serving engine as a child process in its own session (Ctrl-C reaches us; we stop it)."""

    def __init__(self, command: list[str], url: str, *, env: dict[str, str] | None = None):
        self.command, self.url = command, url
        self.env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, startup_timeout_s: float = 600.0) -> ServerProcess:
        log.info("starting: %s", " ".join(self.command))
        try:
            self.proc = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        except FileNotFoundError:
            raise RlvrError(f"cannot run {self.command[0]!r}: is the serving engine installed?") from None
        deadline = time.monotonic() + startup_timeout_s
        while not healthy(self.url):
            code = self.proc.poll()
            if code is not None:
                raise RlvrError(f"the server exited with status {code} before {self.url}/health answered "
                                f"(its log is above)")
            if time.monotonic() > deadline:
                self.stop()
                raise RlvrError(f"{self.url}/health did not answer within {startup_timeout_s:.0f} s")
            time.sleep(0.5)
        return self

    def stop(self, grace_s: float = 15.0) -> int | None:
        """Stop the server (SIGINT, then SIGTERM, then SIGKILL) and return its exit status."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            try:  # the whole session: a worker the engine started must not outlive it (nor hold our stdout)
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return proc.wait()
            try:
                return proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("the server did not stop on %s; sending the next signal", sig.name)
        return proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
