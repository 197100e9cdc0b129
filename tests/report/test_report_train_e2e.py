"""End to end: a real 2-step training run with validation on the tiny model, its checkpoints evaluated
with the real harness, then `rlvr report` on the folder they wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.train import train


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


def test_report_of_a_real_run(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    problems = tmp_path / "val.jsonl"
    problems.write_text("".join(json.dumps({"question": f"What is {a}+{a}?", "answer": str(2 * a)}) + "\n"
                                for a in (1, 2, 3)))
    cfg = resolve_config(None, None, [
        f"model={tiny_model_dir}", "problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4",
        "micro_batch_size=8", "n=4", "max_new_tokens=6", "lr=1e-3", "device=cpu", "temperature=1.0", "steps=2",
        "save_every=1", f"val_file={problems}", "val_every=1", "val_max_new_tokens=6",
    ])
    run = train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    from oneshot_rlvr.eval import EvalOptions, evaluate_run, user_benchmark

    evaluate_run(run, [user_benchmark(f"toy={problems}")], EvalOptions(max_new_tokens=6), batch_rows=8)

    assert main(["report", str(run)]) == 0
    page_path = Path(capsys.readouterr().out.strip())
    assert page_path == run / "report" / "index.html"
    page = page_path.read_text(encoding="utf-8")
    # every plot but self-reflection words (a random tiny model hardly writes "wait" or "verify"), which is
    # either drawn or explained
    assert page.count("data:image/png;base64,") + page.count("Not drawn: no self-reflection words") == 8
    assert "Not drawn: no" not in page.replace("Not drawn: no self-reflection words", "")
    assert "<th>step</th><th>toy</th>" in page and "<td>1</td>" in page and "<td>2</td>" in page
    # the first validated step is the initial model (validation before training), the last the final one
    assert "Step 0: " in page and "Step 2: " in page and "of 3 validation responses right" in page
    assert "<td>model</td><td>" + str(tiny_model_dir) in page
    import torch

    chosen = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"  # (autocast=auto's choice)
    assert f"<td>autocast</td><td>{chosen}</td>" in page
    assert "<td>steps logged</td><td>2 of 2</td>" in page
