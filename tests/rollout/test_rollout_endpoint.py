"""The HTTP rollout engine against a fake OpenAI-compatible server on loopback: order, seeds, lengths,
the in-flight bound, retries of transient errors, and one-line errors for refusals and a dead server."""

from __future__ import annotations

import json

import pytest

from fake_openai import FakeOpenAI
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.endpoint import ChatMessages, EndpointEngine, EndpointError, EndpointOptions, api_base


def _echo(prompt, body):
    return f"{prompt} seed={body.get('seed')} t={body['temperature']}"


def test_completions_prompt_major_with_per_row_seeds_and_lengths():
    with FakeOpenAI(_echo, delay_s=0.05) as fake:
        engine = EndpointEngine(EndpointOptions(fake.url, max_in_flight=3, api_key="k1"))
        out = engine.generate(["a", "b"], 3, SamplingParams(temperature=0.6, max_new_tokens=7), seed=10)
    assert out.texts == [f"{p} seed={s} t=0.6" for p, s in zip("aaabbb", range(10, 16), strict=True)]
    assert out.n == 3 and out.finish_reasons == ["eos"] * 6
    assert out.response_mask.sum(dim=1).tolist() == [3] * 6  # the server's completion_tokens
    assert {r["model"] for r in fake.requests} == {"fake-model"}  # asked of GET /v1/models
    assert {r["max_tokens"] for r in fake.requests} == {7} and {r["auth"] for r in fake.requests} == {"Bearer k1"}
    assert 1 < fake.max_concurrent <= 3


def test_greedy_sends_temperature_zero_and_no_seed():
    with FakeOpenAI(_echo) as fake:
        out = EndpointEngine(EndpointOptions(fake.url + "/v1/", model="fake-model")).generate(
            ["q"], 1, SamplingParams(temperature=0.0), seed=3)
    assert out.texts == ["q seed=None t=0.0"]
    assert "seed" not in fake.requests[0] and fake.requests[0]["path"] == "/v1/completions"


def test_chat_mode_sends_the_template_messages():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    prompt = ChatMessages().apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    with FakeOpenAI(lambda m, body: "|".join(x["content"] for x in m)) as fake:
        out = EndpointEngine(EndpointOptions(fake.url, chat=True)).generate([prompt], 1, SamplingParams(0.0))
    assert out.texts == ["S|U"] and fake.requests[0]["path"] == "/v1/chat/completions"
    assert json.loads(prompt) == messages


def test_transient_errors_are_retried():
    with FakeOpenAI(_echo, fail_first=3) as fake:
        engine = EndpointEngine(EndpointOptions(fake.url, model="fake-model", max_in_flight=1, backoff_s=0.01))
        out = engine.generate(["x", "y"], 1, SamplingParams(temperature=0.0))
    assert out.texts == ["x seed=None t=0.0", "y seed=None t=0.0"] and len(fake.requests) == 5


def test_a_refusal_is_one_line_with_the_servers_reason():
    with FakeOpenAI(_echo) as fake:
        engine = EndpointEngine(EndpointOptions(fake.url, model="other", backoff_s=0.01))
        with pytest.raises(EndpointError, match=r"HTTP 404: .*no model 'other'.*0 of 2 responses") as info:
            engine.generate(["x", "y"], 1, SamplingParams(temperature=0.0))
    assert "\n" not in str(info.value) and len(fake.requests) <= 2  # a 404 is not retried


def test_a_dead_server_stops_the_batch_after_the_retries():
    fake = FakeOpenAI(_echo)
    fake.stop()  # never started: the port refuses connections
    engine = EndpointEngine(EndpointOptions(fake.url, model="fake-model", retries=2, backoff_s=0.01))
    with pytest.raises(EndpointError, match=r"stopped answering .* after 3 tries"):
        engine.generate(["x"], 1, SamplingParams(temperature=0.0))


def test_bad_urls_and_training_use_are_refused():
    assert api_base("http://h:1/") == "http://h:1/v1" and api_base("https://h/v1") == "https://h/v1"
    with pytest.raises(ValueError, match="http:// or https://"):
        api_base("localhost:8000")
    with pytest.raises(ValueError, match="fixed weights"):
        EndpointEngine(EndpointOptions("http://127.0.0.1:9")).sync(object())
