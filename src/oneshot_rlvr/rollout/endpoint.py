"""A rollout engine over HTTP: any OpenAI-compatible server (`rlvr serve`, `vllm serve`, a hosted API).

Evaluation does not care where responses come from: `EndpointEngine.generate` sends one request per
response to `/v1/completions` (prompts rendered here, with the model's tokenizer: the same text the
in-process engine decodes from) or, in chat mode, to `/v1/chat/completions` (the server applies its own
chat template to the messages). At most `max_in_flight` requests are open at once; connection failures,
timeouts, 408, 429 and 5xx answers are retried with exponential backoff; anything else, or a server
that stays down, stops the batch with one line naming the endpoint and how far it got.

Only the standard library is used, so evaluating a served model needs no extra package. The rollouts
carry texts, finish reasons and response lengths (the server's `usage.completion_tokens`), not token
ids: they are for evaluation, not for training (`sync` refuses).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import torch

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.rollout.base import Rollouts, SamplingParams

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FINISH_REASONS = {"stop": "eos", "eos": "eos", "length": "length"}


class EndpointError(RlvrError):
    """The server refused a request or stopped answering."""


@dataclass(frozen=True)
class EndpointOptions:
    """Where and how to reach an OpenAI-compatible server."""

    url: str
    """Base URL, with or without the trailing /v1 (http://127.0.0.1:8000)."""
    model: str | None = None
    """Served model name; None asks the server (the first id of GET /v1/models)."""
    api_key: str | None = None
    """Sent as `Authorization: Bearer KEY` when set."""
    chat: bool = False
    """Send chat messages (prompts made by `ChatMessages`) to /v1/chat/completions."""
    max_in_flight: int = 16
    """Requests open at once."""
    retries: int = 4
    """Extra tries of a request after a transient failure."""
    backoff_s: float = 0.5
    """Wait before the first retry; doubles with each further one."""
    timeout_s: float = 600.0
    """Per request: a 3,072-token answer from a busy server takes minutes."""


class ChatMessages:
    """A stand-in tokenizer for chat mode: `render_prompt` hands it the template's messages and gets
    them back as JSON, which `EndpointEngine` sends as the request's messages. The record's `prompt`
    is then those messages; the server's chat template makes the text the model sees."""

    chat_template = "applied by the server"

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
        return json.dumps(messages, ensure_ascii=False)


def api_base(url: str) -> str:
    """http://host:port[/v1][/] -> http://host:port/v1."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RlvrError(f"--endpoint {url!r}: expected an http:// or https:// URL")
    return base if base.endswith("/v1") else base + "/v1"


class EndpointEngine:
    """Samples from a served model (see the module docstring)."""

    def __init__(self, options: EndpointOptions):
        if options.max_in_flight < 1:
            raise RlvrError(f"max_in_flight must be >= 1 (got {options.max_in_flight})")
        self.options = options
        self.base = api_base(options.url)
        self._model = options.model
        # The requests in flight are the engine's batch; evaluate_problems sends CHUNK_BATCHES (4) of these per
        # generate call: a few waves of requests, so a failure loses little, while the grader keeps up.
        self.max_batch_rows = options.max_in_flight

    @property
    def served_model(self) -> str:
        """The served model's name (asked of the server once, unless given)."""
        if self._model is None:
            listing = self._request("GET", "/models", None)
            ids = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict)]
            if not ids or not isinstance(ids[0], str):
                raise EndpointError(f"{self.base}/models lists no model; pass --served-model NAME")
            self._model = ids[0]
            log.info("%s serves %s", self.base, ", ".join(str(i) for i in ids))
        return self._model

    def sync(self, model: Any) -> None:
        raise RlvrError("an endpoint serves fixed weights; it cannot sample from a model being trained")

    def close(self) -> None:
        """Nothing to release: each request opens and closes its own connection."""

    def generate(
        self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None, first_row: int = 0
    ) -> Rollouts:
        """n responses per prompt, prompt-major; sample row r is seeded seed + first_row + r (when sampling)."""
        rows = [(p, first_row + r) for r, p in enumerate(prompt for prompt in prompts for _ in range(n))]
        answers = self._run_all(rows, sampling, seed)
        texts = [a[0] for a in answers]
        lengths = torch.tensor([a[2] for a in answers], dtype=torch.long)
        width = int(lengths.max()) if len(answers) else 0
        mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).long()
        empty = torch.zeros((len(answers), 0), dtype=torch.long)
        return Rollouts(prompt_ids=empty, prompt_mask=empty.clone(), response_ids=torch.zeros_like(mask),
                        response_mask=mask, texts=texts, finish_reasons=[a[1] for a in answers], n=n)

    def _run_all(self, rows: list[tuple[str, int]], sampling: SamplingParams,
                 seed: int | None) -> list[tuple[str, str, int]]:
        model = self.served_model
        with ThreadPoolExecutor(self.options.max_in_flight, thread_name_prefix="endpoint") as pool:
            futures = [pool.submit(self._one, model, prompt, sampling, None if seed is None else seed + r)
                       for prompt, r in rows]
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for fut in pending:
                fut.cancel()  # the server is refusing or gone: do not queue the rest behind it
            failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
            if failed:
                answered = sum(1 for f in futures if _succeeded(f))
                err = failed[0].exception()
                raise EndpointError(f"{err} ({answered} of {len(rows)} responses of this batch arrived)") from err
            return [f.result() for f in futures]

    def _one(self, model: str, prompt: str, sampling: SamplingParams, seed: int | None) -> tuple[str, str, int]:
        body: dict[str, Any] = {"model": model, "max_tokens": sampling.max_new_tokens,
                                "temperature": 0.0 if sampling.greedy else sampling.temperature}
        if not sampling.greedy:
            body["top_p"] = sampling.top_p
            if sampling.top_k:
                body["top_k"] = sampling.top_k  # not in OpenAI's API; vLLM and transformers read it
            if seed is not None:
                body["seed"] = seed
        if self.options.chat:
            body["messages"] = json.loads(prompt)
            answer = self._request("POST", "/chat/completions", body)
        else:
            body["prompt"] = prompt
            answer = self._request("POST", "/completions", body)
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] if self.options.chat else choice["text"]
            tokens = int((answer.get("usage") or {}).get("completion_tokens", 0))
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise EndpointError(f"{self.base}: an answer without choices[0] text ({str(answer)[:200]})") from err
        reason = str(choice.get("finish_reason") or "stop")
        return str(text or ""), FINISH_REASONS.get(reason, reason), tokens

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """One call, retried on transient failures; the answer's JSON object."""
        opts = self.options
        url = self.base + path
        headers = {"Content-Type": "application/json"}
        if opts.api_key:
            headers["Authorization"] = f"Bearer {opts.api_key}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        for attempt in range(opts.retries + 1):
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method=method)
                with urllib.request.urlopen(req, timeout=opts.timeout_s) as resp:
                    answer = json.loads(resp.read().decode("utf-8"))
                if not isinstance(answer, dict):
                    raise EndpointError(f"{method} {url}: expected a JSON object, got {str(answer)[:200]}")
                return answer
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace").strip()[:300]
                if err.code not in RETRY_STATUS or attempt == opts.retries:
                    raise EndpointError(f"{method} {url}: HTTP {err.code}: {detail}") from None
                why = f"HTTP {err.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as err:
                reason = getattr(err, "reason", err)
                if attempt == opts.retries:
                    raise EndpointError(f"{method} {url}: the server stopped answering ({reason}) after "
                                        f"{opts.retries + 1} tries") from None
                why = str(reason)
            wait_s = opts.backoff_s * 2**attempt
            log.warning("%s %s: %s; retrying in %.1f s", method, url, why, wait_s)
            time.sleep(wait_s)
        raise AssertionError("unreachable")


def _succeeded(fut: Future[Any]) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None
