"""`rlvr eval` end to end on the tiny model: the six benchmarks from generated harness-style files,
user files, ARC, the printed table, one-line errors, and `--run` over a run's checkpoints."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from conftest import shared_data_or_skip
from oneshot_rlvr.cli import main


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Three problems per benchmark in each harness file's own layout."""
    data = tmp_path_factory.mktemp("bench_data")
    q = [f"What is {a} + {b}?" for a, b in ((1, 2), (3, 4), (5, 6))]
    _write_jsonl(data / "math500/test.jsonl",
                 [{"problem": q[i], "answer": str(3 + 4 * i), "unique_id": f"test/x/{i}.json"} for i in range(3)])
    _write_jsonl(data / "aime24/test.jsonl", [{"id": 60 + i, "problem": q[i], "answer": str(3 + 4 * i)}
                                             for i in range(3)])
    _write_jsonl(data / "aime25/test.jsonl", [{"problem": q[i], "answer": str(3 + 4 * i)} for i in range(3)])
    _write_jsonl(data / "amc23/test.jsonl", [{"id": i, "problem": q[i], "answer": 3.0 + 4 * i} for i in range(3)])
    _write_jsonl(data / "minerva_math/test.jsonl",
                 [{"problem": q[i], "solution": rf"so \boxed{{{3 + 4 * i}}}", "idx": i} for i in range(3)])
    _write_jsonl(data / "olympiadbench/test.jsonl",
                 [{"id": 100 + i, "question": q[i], "final_answer": [f"${3 + 4 * i}$"]} for i in range(3)])
    _write_jsonl(data / "ARC-Easy/ARC-Easy-Test.jsonl", [
        {"id": f"arc{i}", "question": {"stem": f"Pick {i}", "choices": [
            {"label": "A", "text": "one"}, {"label": "B", "text": "two"}]}, "answerKey": "A"} for i in range(3)])
    return data


def test_six_benchmarks_end_to_end(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--limit", "2",
               "--max-new-tokens", "3", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(results["benchmarks"]) == ["math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench"]
    for name, res in results["benchmarks"].items():
        n = 8 if name in ("aime24", "aime25", "amc23") else 1
        assert res["protocol"] == {"n": n, "temperature": 0.6 if n == 8 else 0.0, "top_p": 1.0,
                                   "max_new_tokens": 3, "template": "qwen25-math-cot", "limit": 2,
                                   "seed": 0 if n == 8 else None, "grader": "math-verify+harness",
                                   "stop": "harness"}
        assert res["problems"] == 2 and res["responses"] == 2 * n
        assert 0.0 <= res["accuracy"] <= 1.0 and res["mean_response_tokens"] <= 3
        assert set(res["reflection"]["words"]) == {"rethink", "recheck", "recalculate", "re-evaluate",
                                                   "double-check", "verify", "wait"}
    assert "pass@8" in results["benchmarks"]["aime24"] and "pass@2" not in results["benchmarks"]["math500"]
    assert results["average"]["complete"] is True
    records = [json.loads(x) for x in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3 * 2 + 3 * 16
    assert {r["benchmark"] for r in records} == set(results["benchmarks"])
    assert {"benchmark", "problem_id", "sample", "prompt", "response", "extracted", "gold", "correct",
            "strict_correct", "tokens", "finish_reason"} <= set(records[0])
    assert [r["gold"] for r in records if r["benchmark"] == "amc23"][:1] == ["3"]
    # the paper's benchmarks are graded under both rules by default
    assert results["settings"]["grader"] == "both" and results["harness_average"]["complete"] is True
    assert all({"harness_correct", "harness_answer", "harness_timed_out"} <= set(r) for r in records)
    assert all(0.0 <= res["harness_accuracy"] <= 1.0 for res in results["benchmarks"].values())
    caption, header_line, row = capsys.readouterr().out.splitlines()[:3]
    assert caption == "accuracy (%) under the paper's harness rule, ours in brackets"
    assert header_line.split() == ["MATH500", "AIME24", "AIME25", "AMC23", "Minerva", "Olympiad", "Avg"]
    math500 = results["benchmarks"]["math500"]
    assert f"{100 * math500['harness_accuracy']:.1f} ({100 * math500['accuracy']:.1f})" in row


def test_same_seed_same_records_through_the_command(tiny_model_dir, data_dir, tmp_path):
    args = ["eval", "--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--limit", "2",
            "--benchmarks", "aime24", "--max-new-tokens", "4", "--n", "3", "--temperature", "1.0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a/records.jsonl").read_text() == (tmp_path / "b/records.jsonl").read_text()


def test_user_file_and_arc(tiny_model_dir, data_dir, tmp_path):
    mine = _write_jsonl(tmp_path / "mine.jsonl", [{"q": "2+2?", "a": "4"}, {"q": "3+3?", "a": "6"}])
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--benchmarks", "arc_easy",
               "--benchmark", f"mine={mine}", "--question-field", "q", "--answer-field", "a",
               "--max-new-tokens", "2", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(results["benchmarks"]) == ["arc_easy", "mine"]
    assert results["benchmarks"]["arc_easy"]["problems"] == 3 and results["benchmarks"]["mine"]["problems"] == 2
    assert results["average"]["complete"] is False


def test_errors_are_one_line(tiny_model_dir, data_dir, tmp_path, capsys):
    assert main(["eval", "--model", str(tiny_model_dir)]) == 2
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path), "--benchmarks", "gsm9k"]) == 2
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path),
                 "--data-dir", str(tmp_path / "none"), "--benchmark", f"x={tmp_path / 'absent.jsonl'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("rlvr eval: error:") for line in err)
    assert "--out" in err[0] and "gsm9k" in err[1] and "absent.jsonl" in err[2]


def _make_run(root, tiny_model_dir, steps):
    for step in steps:
        shutil.copytree(tiny_model_dir, root / "checkpoints" / f"step_{step}")
    return root


def test_run_evaluates_checkpoints_by_step_and_skips_done_ones(tiny_model_dir, data_dir, tmp_path, capsys):
    run = _make_run(tmp_path / "run", tiny_model_dir, [0, 5, 10])
    (run / "checkpoints" / ".tmp_step_15_99").mkdir()  # an interrupted save is not a checkpoint
    args = ["eval", "--run", str(run), "--benchmarks", "math500,aime24", "--data-dir", str(data_dir),
            "--limit", "2", "--max-new-tokens", "2", "--n", "2"]
    assert main([*args, "--every", "10"]) == 0
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["0", "10"]
    assert main(args) == 0
    assert sorted(p.name for p in (run / "eval").iterdir()) == ["0", "10", "5"]
    for step in (0, 5, 10):
        res = json.loads((run / "eval" / str(step) / "results.json").read_text(encoding="utf-8"))
        assert res["step"] == step and set(res["benchmarks"]) == {"math500", "aime24"}
        assert (run / "eval" / str(step) / "records.jsonl").exists()
    stamp = (run / "eval/0/results.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # everything already evaluated: nothing is rerun
    assert (run / "eval/0/results.json").stat().st_mtime_ns == stamp
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()[2:]]  # after caption, header
    assert rows == [["step", "0"], ["step", "5"], ["step", "10"]]


def test_run_checkpoint_without_tokenizer_uses_the_run_config(tiny_model_dir, data_dir, tmp_path):
    run = _make_run(tmp_path / "run", tiny_model_dir, [3])
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (run / "checkpoints/step_3" / name).unlink(missing_ok=True)
    args = ["eval", "--run", str(run), "--benchmarks", "math500", "--data-dir", str(data_dir), "--limit", "1",
            "--max-new-tokens", "2"]
    assert main(args) == 2  # no tokenizer anywhere: one line saying so
    (run / "config.yaml").write_text(f"model: {tiny_model_dir}\n", encoding="utf-8")
    assert main(args) == 0
    assert (run / "eval/3/results.json").exists()


def test_run_without_checkpoints_is_an_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["eval", "--run", str(tmp_path / "run")]) == 2
    assert "no step_N" in capsys.readouterr().err


def test_shared_harness_files_end_to_end(tiny_model_dir, tmp_path):
    data = shared_data_or_skip("Qwen2.5-Eval/evaluation/data")
    out = tmp_path / "out"
    rc = main(["eval", "--model", str(tiny_model_dir), "--data-dir", str(data), "--limit", "2",
               "--max-new-tokens", "2", "--n", "2", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert all(b["problems"] == 2 for b in results["benchmarks"].values())
    assert results["average"]["complete"] is True


def test_run_with_lora_checkpoints_merges_the_adapter(tiny_model_dir, data_dir, tmp_path):
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(run / "checkpoints" / "step_4")  # adapter only, no config.json
    (run / "config.yaml").write_text(f"model: {tiny_model_dir}\n", encoding="utf-8")
    rc = main(["eval", "--run", str(run), "--benchmarks", "math500", "--data-dir", str(data_dir),
               "--limit", "1", "--max-new-tokens", "2"])
    assert rc == 0
    assert json.loads((run / "eval/4/results.json").read_text(encoding="utf-8"))["step"] == 4


def test_grader_choice_sets_the_record_fields(tiny_model_dir, data_dir, tmp_path, capsys):
    base = ["eval", "--model", str(tiny_model_dir), "--data-dir", str(data_dir), "--limit", "2",
            "--benchmarks", "math500,olympiadbench", "--max-new-tokens", "2"]
    assert main([*base, "--grader", "ours", "--out", str(tmp_path / "ours")]) == 0
    ours = [json.loads(x) for x in (tmp_path / "ours/records.jsonl").read_text().splitlines()]
    assert not any("harness_correct" in r for r in ours)
    assert capsys.readouterr().out.splitlines()[0].split()[0] == "MATH500"  # no caption: our rule only
    assert main([*base, "--grader", "harness", "--out", str(tmp_path / "harness")]) == 0
    results = json.loads((tmp_path / "harness/results.json").read_text())
    assert results["settings"]["grader"] == "harness" and "harness_accuracy" in results["benchmarks"]["math500"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "accuracy (%) under the paper's harness rule" and "(" not in out[2].split(maxsplit=1)[1]


def test_harness_grader_refuses_a_benchmark_it_cannot_read(tiny_model_dir, tmp_path, capsys):
    mine = _write_jsonl(tmp_path / "mine.jsonl", [{"q": "2+2?", "a": "4"}])
    args = ["eval", "--model", str(tiny_model_dir), "--benchmark", f"mine={mine}", "--question-field", "q",
            "--answer-field", "a", "--max-new-tokens", "2", "--out", str(tmp_path / "out")]
    assert main([*args, "--grader", "harness"]) == 2
    assert "harness rule has no gold parsing for mine" in capsys.readouterr().err
    assert main(args) == 0  # by default a user's own file is graded by ours alone
    records = (tmp_path / "out/records.jsonl").read_text()
    assert "harness_correct" not in records


def _step_results(run, step):
    res = json.loads((run / "eval" / str(step) / "results.json").read_text(encoding="utf-8"))
    records = [json.loads(x) for x in (run / "eval" / str(step) / "records.jsonl").read_text().splitlines()]
    return res, records


def test_run_merges_new_benchmarks_into_a_step(tiny_model_dir, data_dir, tmp_path):
    run = _make_run(tmp_path / "run", tiny_model_dir, [2])
    args = ["eval", "--run", str(run), "--data-dir", str(data_dir), "--limit", "2", "--max-new-tokens", "2"]
    assert main([*args, "--benchmarks", "math500"]) == 0
    before, _ = _step_results(run, 2)
    assert main([*args, "--benchmarks", "minerva_math"]) == 0
    res, records = _step_results(run, 2)
    assert list(res["benchmarks"]) == ["math500", "minerva_math"]
    assert res["benchmarks"]["math500"] == before["benchmarks"]["math500"]  # kept as it was
    assert sorted({r["benchmark"] for r in records}) == ["math500", "minerva_math"] and len(records) == 4


def test_run_reevaluates_when_the_protocol_differs(tiny_model_dir, data_dir, tmp_path, caplog):
    run = _make_run(tmp_path / "run", tiny_model_dir, [2])
    args = ["eval", "--run", str(run), "--data-dir", str(data_dir), "--benchmarks", "math500,aime24",
            "--max-new-tokens", "2", "--n", "2"]
    assert main([*args, "--limit", "1"]) == 0
    res, _ = _step_results(run, 2)
    assert res["benchmarks"]["math500"]["problems"] == 1 and res["benchmarks"]["math500"]["protocol"]["limit"] == 1
    with caplog.at_level(logging.INFO, logger="oneshot_rlvr.eval.curve"):
        assert main([*args, "--limit", "2"]) == 0
    res, records = _step_results(run, 2)
    assert {name: b["problems"] for name, b in res["benchmarks"].items()} == {"math500": 2, "aime24": 2}
    assert all(b["protocol"]["limit"] == 2 for b in res["benchmarks"].values())
    assert len(records) == 2 + 2 * 2  # the old records are replaced, not appended to
    assert "another protocol" in caplog.text
    caplog.clear()
    stamp = (run / "eval/2/results.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="oneshot_rlvr.eval.curve"):
        assert main([*args, "--limit", "2"]) == 0  # the same protocol: read back, and said so
    assert (run / "eval/2/results.json").stat().st_mtime_ns == stamp
    assert "already evaluated with this protocol" in caplog.text
    with caplog.at_level(logging.INFO, logger="oneshot_rlvr.eval.curve"):
        assert main([*args, "--limit", "2", "--max-new-tokens", "3"]) == 0
    res, _ = _step_results(run, 2)
    assert all(b["protocol"]["max_new_tokens"] == 3 for b in res["benchmarks"].values())


def test_a_failed_reevaluation_keeps_the_old_results(tiny_model_dir, data_dir, tmp_path, monkeypatch):
    import oneshot_rlvr.eval.curve as curve

    run = _make_run(tmp_path / "run", tiny_model_dir, [2])
    args = ["eval", "--run", str(run), "--data-dir", str(data_dir), "--benchmarks", "math500",
            "--max-new-tokens", "2"]
    assert main([*args, "--limit", "1"]) == 0
    before = (run / "eval/2/results.json").read_text()

    def fail(*a, **k):
        raise RuntimeError("generation failed")

    monkeypatch.setattr(curve, "evaluate_benchmarks", fail)
    assert main([*args, "--limit", "2"]) == 1
    assert (run / "eval/2/results.json").read_text() == before


def test_run_with_out_and_cuda_without_cuda_are_errors(tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch):
    run = _make_run(tmp_path / "run", tiny_model_dir, [2])
    assert main(["eval", "--run", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--run" in err and "--out" in err
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--device", "cuda",
                 "--data-dir", str(data_dir), "--benchmarks", "math500"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda" in err
