"""A small OpenAI-compatible server for tests, on 127.0.0.1 and a free port, in a thread.

`answer(prompt_or_messages, body) -> text` makes each completion. `fail_first` answers the first K
requests with 503 (a transient error); `die_after` closes the server for good after that many answered
completions (the server dying mid-evaluation). `max_concurrent` records the most requests in flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, answer: Callable[[Any, dict[str, Any]], str], *, model: str = "fake-model",
                 fail_first: int = 0, die_after: int | None = None, delay_s: float = 0.0):
        self.answer, self.model, self.fail_first, self.die_after = answer, model, fail_first, die_after
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        self.in_flight = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._send(200, {"status": "ok"})
                elif self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
                else:
                    self._send(404, {"detail": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                    failing = len(fake.requests) <= fake.fail_first
                    fake.in_flight += 1
                    fake.max_concurrent = max(fake.max_concurrent, fake.in_flight)
                try:
                    time.sleep(fake.delay_s)
                    status, payload = self._answer(body, failing)
                finally:
                    # Out of flight before the answer goes: once the client has it, it may send its next request
                    # while this thread is still here (counted after the send, that was a third "in flight").
                    with fake._lock:
                        fake.in_flight -= 1
                        fake.answered += 1
                        dying = fake.die_after is not None and fake.answered == fake.die_after
                self._send(status, payload)
                if dying:  # stop accepting: later requests find the port closed
                    threading.Thread(target=fake.stop, daemon=True).start()

            def _answer(self, body: dict[str, Any], failing: bool) -> tuple[int, dict[str, Any]]:
                if failing:
                    return 503, {"detail": "warming up"}
                if body.get("model") != fake.model:
                    return 404, {"detail": f"no model {body.get('model')!r}"}
                chat = self.path == "/v1/chat/completions"
                text = fake.answer(body["messages"] if chat else body["prompt"], body)
                choice = {"index": 0, "finish_reason": "stop",
                          **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
                return 200, {"choices": [choice], "model": fake.model,
                             "usage": {"completion_tokens": len(text.split())}}

        return Handler
