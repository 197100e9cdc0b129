"""`rlvr serve` end to end on loopback: the bundled tiny model behind `transformers serve`, asked through
the `openai` client, stopped by SIGINT; the vLLM command it would run; the install hint."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from serve_run import make_run

from oneshot_rlvr.cli import main

needs_serving = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn", "openai")),
    reason="needs the [serve] extra and openai")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_vllm_command_is_what_a_gpu_machine_would_run(tmp_path, capsys):
    run = make_run(tmp_path / "run", [4, 8], val={4: 0.5, 8: 0.25})
    copy = tmp_path / "copy"
    rc = main(["serve", str(run), "--engine", "vllm", "--port", "8123", "--copy-dir", str(copy),
               "--template", "oneshot-train", "--dry-run", "--engine-arg=--max-model-len", "--engine-arg", "4096"])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "serving step 4 (best validation accuracy 50.0% of 2 validated checkpoints)"
    assert out[1].startswith(f"served copy {copy.resolve()}:") and out[1].endswith("chat template oneshot-train")
    assert out[2].split()[1:] == ["serve", str(copy.resolve()), "--host", "127.0.0.1", "--port", "8123",
                                  "--served-model-name", str(copy.resolve()), "--generation-config", "auto",
                                  "--max-model-len", "4096"]
    assert (copy / "chat_template.jinja").read_text(encoding="utf-8").count("Let's think step by step") == 2


def test_a_missing_engine_is_one_line_with_the_install_hint(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert main(["serve", "builtin:tiny", "--engine", "vllm", "--copy-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rlvr serve: error: --engine vllm needs vllm: pip install vllm (Linux with a CUDA GPU; "
                   "see docs/serving.md)"]


@needs_serving
@pytest.mark.slow
def test_serve_answers_the_openai_client_and_stops_on_ctrl_c(tmp_path):
    import openai

    run = make_run(tmp_path / "run", [2])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "oneshot_rlvr", "serve", str(run), "--port", str(port),
                             "--device", "cpu", "--startup-timeout", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # bounded: the server is up, or the test fails
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("serving ") and " at http" in line:
                break
        assert any(" at http://127.0.0.1:" in x for x in lines), "".join(lines)
        model = next(x for x in lines if x.startswith("served copy ")).split()[2].rstrip(":")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                               timeout=240)
        reply = client.chat.completions.create(model=model, max_tokens=12, temperature=0,
                                               messages=[{"role": "user", "content": "What is 12 + 30?"}])
        assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
        client.close()  # (an open keep-alive connection would hold up the server's graceful shutdown)
        proc.send_signal(signal.SIGINT)
        # A bound, not a speed check: the server gets 15 s per signal (SIGINT, SIGTERM) before SIGKILL.
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "stopped the server" in rest
    with pytest.raises(OSError):  # nothing listens on the port any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
