"""A hand-written run folder with the files `rlvr train` and `rlvr eval --run` write, for report tests.

One training example ("124") repeated to the batch, so each step is one epoch; its accuracy climbs to 1.0
at step 8 while validation accuracy keeps rising (the post-saturation picture).
"""

from __future__ import annotations

import json
from pathlib import Path

STEPS = 12
TRAIN_ACC = [0.125, 0.25, 0.25, 0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 0.875, 1.0, 1.0]
VAL_STEPS = [4, 8, 12]
VAL_ACC = {4: 0.25, 8: 0.5, 12: 0.75}  # lenient: 1, 2, 3 right of 4 problems
VAL_STRICT = {4: 0.0, 8: 0.25, 12: 0.5}
EVAL_STEPS = [4, 12]
PAPER = ("math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench")
LABELS = ("MATH500", "AIME24", "AIME25", "AMC23", "Minerva", "Olympiad")
# accuracy per benchmark at each eval step; step 12 averages to (0.736+0.2+0.1+0.5+0.3+0.4)/6 = 0.371
EVAL_ACC = {4: (0.36, 0.1, 0.0, 0.3, 0.1, 0.2), 12: (0.736, 0.2, 0.1, 0.5, 0.3, 0.4)}
WAIT_COUNTS = {4: 3, 12: 11}  # "wait" occurrences in MATH500 responses


def metrics_row(step: int) -> dict:
    acc = TRAIN_ACC[step - 1]
    row = {
        "step": step, "epoch": step, "reward_mean": acc, "reward_std": 0.3, "train_accuracy": acc,
        "entropy": 0.9 - 0.05 * step, "kl": 0.001 * step, "pg_loss": -0.01, "loss": -0.01, "clip_frac": 0.02,
        "approx_kl": 0.0005, "grad_norm": 0.4, "response_length_mean": 300.0 - 10 * step,
        "response_length_max": 900.0, "truncation_rate": 0.05, "tokens_per_s": 1000.0, "time_generate": 6.0,
        "time_score": 0.5, "time_logprobs": 1.0, "time_update": 2.5, "time_step": 10.0,
        "peak_memory_gb": 30.0 + step, "lr": 1e-6,
    }
    if step in VAL_ACC:
        row.update(val_accuracy=VAL_ACC[step], val_strict_accuracy=VAL_STRICT[step], val_format_rate=0.75,
                   val_problems=4, val_responses=4, val_mean_response_tokens=250.0, val_truncation_rate=0.0)
    return row


CONFIG = """model: Qwen/Qwen2.5-Math-1.5B
dtype: float32
pool: data/train/one_shot_rlvr/dsr_sub.parquet
index: '124'
problem: ''
answer: ''
algo: grpo
kl_coef: 0.001
entropy_coef: 0.001
n: 8
temperature: 0.6
max_new_tokens: 3072
lr: 1.0e-06
batch_size: 128
mini_batch_size: 128
steps: 12
seed: 0
val_file: data/test/math500.parquet
"""


def validation_records(step: int) -> list[dict]:
    right = round(VAL_ACC[step] * 4)
    strict = round(VAL_STRICT[step] * 4)
    records = []
    for i in range(4):
        response = f"Step {step}, problem {i}: x < y & <b>bold</b>. Wait, recheck. The answer is \\boxed{{{i + 1}}}."
        records.append({
            "benchmark": "validation", "problem_index": i, "problem_id": f"p{i}", "sample": 0,
            "prompt": f"<|im_start|>user Problem {i}?", "response": response, "extracted": str(i + 1),
            "gold": str(i + 1) if i < right else "99", "correct": i < right, "strict_correct": i < strict,
            "boxed": True, "tokens": 40 + i, "finish_reason": "eos", "reflection": {"wait": 1, "recheck": 1},
        })
    return records


def eval_results(step: int) -> dict:
    benchmarks = {}
    for name, label, acc in zip(PAPER, LABELS, EVAL_ACC[step], strict=True):
        wait = WAIT_COUNTS[step] if name == "math500" else 0
        words = {w: {"total": wait if w == "wait" else 0, "per_response": 0.0, "response_rate": 0.0}
                 for w in ("rethink", "recheck", "recalculate", "re-evaluate", "double-check", "verify", "wait")}
        benchmarks[name] = {
            "label": label, "kind": "math", "protocol": {"n": 1, "temperature": 0.0}, "problems": 10,
            "responses": 10, "samples_per_problem": 1, "accuracy": acc, "strict_accuracy": acc / 2,
            "avg@1": acc, "pass@1": acc, "format_rate": 0.8, "mean_response_tokens": 500.0,
            "truncation_rate": 0.0, "reflection": {"responses": 10, "any_rate": 0.1, "words": words},
            "seconds": 1.0,
        }
    average = sum(EVAL_ACC[step]) / 6
    return {"format": 1, "model": f"run/checkpoints/step_{step}", "step": step, "settings": {},
            "benchmarks": benchmarks,
            "average": {"accuracy": average, "benchmarks": list(PAPER), "complete": True}}


def make_run(root: Path, *, validation: bool = True, evals: bool = True) -> Path:
    """Write the run folder under root/run and return it."""
    run = root / "run"
    run.mkdir(parents=True)
    rows = [metrics_row(s) for s in range(1, STEPS + 1)]
    if not validation:
        rows = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in rows]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(CONFIG)
    (run / "history.json").write_text(json.dumps({"124": TRAIN_ACC}))
    if validation:
        (run / "validation").mkdir()
        for step in VAL_STEPS:
            lines = "".join(json.dumps(r) + "\n" for r in validation_records(step))
            (run / "validation" / f"step_{step}.jsonl").write_text(lines)
    if evals:
        for step in EVAL_STEPS:
            folder = run / "eval" / str(step)
            folder.mkdir(parents=True)
            (folder / "results.json").write_text(json.dumps(eval_results(step), indent=2))
            (folder / "records.jsonl").write_text("")
    return run
