"""`rlvr eval --run` sends each newly evaluated checkpoint's results to the trackers the run's config names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oneshot_rlvr.eval import EvalOptions, evaluate_run, user_benchmark
from oneshot_rlvr.eval.curve import eval_metrics


def test_eval_metrics_names_each_benchmark_number() -> None:
    results = {"benchmarks": {"math500": {"accuracy": 0.5, "strict_accuracy": 0.25, "pass@1": 0.5, "problems": 4,
                                          "label": "MATH500", "mean_response_tokens": 12.0}},
               "average": {"accuracy": 0.5, "complete": False},
               "harness_average": {"harness_accuracy": 0.75, "complete": True}}
    assert eval_metrics(results) == {"eval/math500/accuracy": 0.5, "eval/math500/strict_accuracy": 0.25,
                                     "eval/math500/pass@1": 0.5, "eval/math500/mean_response_tokens": 12.0,
                                     "eval/harness_average": 0.75}  # (the incomplete average is left out)


def test_run_results_reach_tensorboard_at_their_steps(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard is an optional extra ([tracking])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    for step in (2, 4):
        shutil.copytree(tiny_model_dir, run / "checkpoints" / f"step_{step}")
    (run / "config.yaml").write_text(f"model: {tiny_model_dir}\nreport_to: tensorboard\n", encoding="utf-8")
    problems = tmp_path / "toy.jsonl"
    problems.write_text("".join(json.dumps({"question": f"What is {a}+1?", "answer": str(a + 1)}) + "\n"
                                for a in range(3)))
    curve = evaluate_run(run, [user_benchmark(f"toy={problems}")], EvalOptions(max_new_tokens=4), batch_rows=8)
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    for step, results in curve:
        expected = eval_metrics(results)
        assert expected["eval/toy/mean_response_tokens"] > 0
        for tag, value in expected.items():
            assert [(e.step, e.value) for e in acc.Scalars(tag) if e.step == step] == [(step, pytest.approx(value))]
    # A second pass reads the results back and sends nothing twice.
    evaluate_run(run, [user_benchmark(f"toy={problems}")], EvalOptions(max_new_tokens=4), batch_rows=8)
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/toy/accuracy")] == [2, 4]
