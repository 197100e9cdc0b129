"""`rlvr eval --endpoint` against a fake OpenAI-compatible server on loopback: the usual outputs, records
that name the endpoint, prompts rendered here or by the server, and a server dying part way."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from fake_openai import FakeOpenAI
from oneshot_rlvr.cli import main


def _problems(path, count):
    rows = [{"problem": f"What is {i} + {i}?", "answer": str(2 * i), "id": f"p{i}"} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _solver(prompt, body):
    """Right on even i, wrong on odd i: 50% accuracy, whatever the prompt's format."""
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]
    i = int(re.search(r"What is (\d+) \+", text).group(1))
    return f"So the answer is \\boxed{{{2 * i + i % 2}}}."


def _records(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_endpoint_eval_writes_the_usual_outputs(tmp_path, capsys):
    bench = _problems(tmp_path / "w.jsonl", 6)
    out = tmp_path / "out"
    with FakeOpenAI(_solver) as fake:
        rc = main(["eval", "--endpoint", fake.url, "--benchmark", f"w={bench}", "--out", str(out),
                   "--max-new-tokens", "9", "--max-in-flight", "2"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["model"] == "fake-model"
    assert results["source"] == {"endpoint": fake.url + "/v1", "served_model": "fake-model"}
    assert results["benchmarks"]["w"]["accuracy"] == 0.5
    records = _records(out / "records.jsonl")
    assert [r["correct"] for r in records] == [True, False] * 3
    assert {(r["endpoint"], r["served_model"]) for r in records} == {(fake.url + "/v1", "fake-model")}
    # no --tokenizer: the template's messages went to the server's chat template, and are the record's prompt
    assert {r["path"] for r in fake.requests} == {"/v1/chat/completions"}
    assert json.loads(records[0]["prompt"])[0]["role"] == "system"
    assert {r["max_tokens"] for r in fake.requests} == {9} and fake.max_concurrent <= 2
    assert "fake-model" in capsys.readouterr().out
    assert not (out / "records.partial.jsonl").exists()


def test_with_a_tokenizer_the_prompts_are_rendered_here(tiny_model_dir, tmp_path):
    from oneshot_rlvr.data.templates import render_prompt
    from oneshot_rlvr.models.load import load_tokenizer

    bench = _problems(tmp_path / "w.jsonl", 2)
    with FakeOpenAI(_solver) as fake:
        rc = main(["eval", "--endpoint", fake.url, "--benchmark", f"w={bench}", "--out", str(tmp_path / "o"),
                   "--tokenizer", str(tiny_model_dir), "--template", "oneshot-train"])
    assert rc == 0
    tok = load_tokenizer(str(tiny_model_dir))
    assert sorted(r["prompt"] for r in fake.requests) == [  # (sent concurrently: in any order)
        render_prompt(f"What is {i} + {i}?", "oneshot-train", tok) for i in range(2)]


def test_a_server_dying_part_way_keeps_the_records_so_far(tmp_path, capsys):
    bench = _problems(tmp_path / "w.jsonl", 20)
    out = tmp_path / "out"
    # 2 in flight -> 8 rows per generation call; the server answers 10 requests, then its port closes
    with FakeOpenAI(_solver, die_after=10) as fake:
        rc = main(["eval", "--endpoint", fake.url, "--benchmark", f"w={bench}", "--out", str(out),
                   "--max-in-flight", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    line = [x for x in err.splitlines() if x.startswith("rlvr eval: error:")]
    assert len(line) == 1 and "stopped answering" in line[0] and fake.url in line[0]
    assert not (out / "results.json").exists()
    kept = _records(out / "records.partial.jsonl")
    assert [r["problem_id"] for r in kept] == [f"p{i}" for i in range(8)]  # the first whole chunk, graded
    assert [r["correct"] for r in kept] == [True, False] * 4 and kept[0]["served_model"] == "fake-model"


def test_endpoint_flags_are_checked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    assert main(["eval", "--endpoint", "http://127.0.0.1:9", "--model", "x", "--out", str(tmp_path)]) == 2
    assert main(["eval", "--endpoint", "http://127.0.0.1:9"]) == 2
    assert main(["eval", "--endpoint", "http://127.0.0.1:9", "--out", str(tmp_path),
                 "--api-key-env", "NO_SUCH_KEY_VAR"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "exactly one of --model" in err[0] and "--endpoint needs --out" in err[1]
    assert "NO_SUCH_KEY_VAR: that environment variable is not set" in err[2]


needs_serving = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn")),
    reason="needs the [serve] extra")


@needs_serving
@pytest.mark.slow
def test_greedy_answers_through_the_server_equal_in_process_ones(tmp_path):
    """20 world test problems, greedy: `rlvr serve`'s served copy (chat template qwen25-math-cot) asked
    through /v1/chat/completions answers exactly what the in-process engine answers."""
    import socket

    from oneshot_rlvr.serve.checkpoint import pick_checkpoint, served_copy
    from oneshot_rlvr.serve.server import ServerProcess, engine_command
    from oneshot_rlvr.world.problems import generate_problems

    bench = tmp_path / "world.jsonl"
    bench.write_text("".join(json.dumps(p.row()) + "\n" for p in generate_problems("test", 20)), encoding="utf-8")
    common = ["--benchmark", f"world={bench}", "--max-new-tokens", "64"]
    assert main(["eval", "--model", "builtin:tiny", "--device", "cpu", "--out", str(tmp_path / "local"),
                 *common]) == 0
    folder, _ = served_copy(pick_checkpoint("builtin:tiny"), "qwen25-math-cot", tmp_path / "served")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = engine_command("transformers", folder, host="127.0.0.1", port=port, device="cpu")
    with ServerProcess(cmd, f"http://127.0.0.1:{port}").start(240):
        assert main(["eval", "--endpoint", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "served_eval"),
                     *common]) == 0
    local = _records(tmp_path / "local" / "records.jsonl")
    served = _records(tmp_path / "served_eval" / "records.jsonl")
    assert len(local) == len(served) == 20
    assert [r["response"] for r in served] == [r["response"] for r in local]
    assert [r["correct"] for r in served] == [r["correct"] for r in local]
