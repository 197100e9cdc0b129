"""`rlvr eval --run RUN --serve-engine transformers`: each checkpoint through a server of its own,
written where in-process evaluation writes it, with the same greedy answers."""

from __future__ import annotations

import importlib.util
import json

import pytest
from serve_run import make_run

from oneshot_rlvr.cli import main


def _bench(tmp_path):
    from oneshot_rlvr.world.problems import generate_problems

    path = tmp_path / "world.jsonl"
    path.write_text("".join(json.dumps(p.row()) + "\n" for p in generate_problems("test", 3)), encoding="utf-8")
    return path


def test_serve_engine_needs_a_run(tmp_path, capsys):
    assert main(["eval", "--model", "builtin:tiny", "--out", str(tmp_path), "--serve-engine", "vllm"]) == 2
    assert "--serve-engine needs --run RUN" in capsys.readouterr().err


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn")),
                    reason="needs the [serve] extra")
@pytest.mark.slow
def test_each_checkpoint_is_served_and_evaluated(tmp_path, capsys):
    run = make_run(tmp_path / "run", [2])
    common = ["--benchmark", f"world={_bench(tmp_path)}", "--max-new-tokens", "24"]
    assert main(["eval", "--run", str(run), "--serve-engine", "transformers", "--device", "cpu", *common]) == 0
    assert "step 2" in capsys.readouterr().out
    served = [json.loads(x) for x in (run / "eval" / "2" / "records.jsonl").read_text().splitlines()]
    assert json.loads((run / "eval" / "2" / "results.json").read_text())["step"] == 2
    assert all(r["endpoint"].startswith("http://127.0.0.1:") for r in served)
    assert main(["eval", "--model", str(run / "checkpoints" / "step_2"), "--device", "cpu",
                 "--out", str(tmp_path / "local"), *common]) == 0
    local = [json.loads(x) for x in (tmp_path / "local" / "records.jsonl").read_text().splitlines()]
    assert [r["response"] for r in served] == [r["response"] for r in local]
    assert [r["prompt"] for r in served] == [r["prompt"] for r in local]
