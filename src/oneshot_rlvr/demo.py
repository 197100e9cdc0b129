"""`rlvr demo`: 1-shot RLVR on the bundled tiny math world, end to end, on a CPU.

The same code path as a real model: `builtin:tiny` is loaded like any Hugging Face model, trained by
`oneshot_rlvr.train` on ONE example repeated to the batch, and evaluated before, during (every
checkpoint) and after training by `oneshot_rlvr.eval` on the world's held-out test split. The result is
a before/after table of strict accuracy (the last \\boxed{} is right: the training reward's rule) and
lenient accuracy (the final answer is right in any format), overall and per problem family.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_rlvr import runfolder
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.report.rundata import SATURATION, first_reaching, load_run
from oneshot_rlvr.runfolder import RunFolder, read_jsonl, write_atomic

log = logging.getLogger("oneshot_rlvr.demo")

# The default training example: the pool's first three-step word problem (15 + 2 * 8 - 5 = 26). Fixed
# before any evaluation and not tuned on the test split; --example picks any other pool problem.
DEFAULT_EXAMPLE = "train-00002"


@dataclass
class DemoOptions:
    """What `rlvr demo` runs."""

    out: Path = Path("runs/demo")
    seed: int = 0
    example: str = DEFAULT_EXAMPLE
    entropy_only: bool = False
    reward: str = "math"
    loss: str = "pg"
    steps: int | None = None
    test_problems: int = 250
    val_problems: int = 100
    pool_problems: int = 200
    eval_every: int = 10
    overrides: list[str] = field(default_factory=list)
    quiet: bool = False


def _write_split(path: Path, problems: list[Any]) -> None:
    path.write_text("".join(json.dumps(p.row()) + "\n" for p in problems), encoding="utf-8")


def _family_table(records: list[dict[str, Any]], family_of: dict[str, str]) -> dict[str, dict[str, float]]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in records:
        t = totals[family_of[str(r["problem_id"])]]
        t[0] += 1
        t[1] += bool(r["strict_correct"])
        t[2] += bool(r["correct"])
    return {fam: {"strict": s / n, "lenient": ok / n} for fam, (n, s, ok) in sorted(totals.items())}


def _records(run: Path, step: int) -> list[dict[str, Any]]:
    return read_jsonl(RunFolder(run).eval_dir(step) / runfolder.RECORDS)


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Train, evaluate and summarise; returns the summary written to OUT/summary.json."""
    from oneshot_rlvr.config import resolve_config
    from oneshot_rlvr.eval.benchmarks import user_benchmark
    from oneshot_rlvr.eval.curve import evaluate_run
    from oneshot_rlvr.eval.run import EvalOptions, evaluate_benchmarks
    from oneshot_rlvr.models.load import load_model, load_tokenizer
    from oneshot_rlvr.rollout.engine import make_engine
    from oneshot_rlvr.train import train
    from oneshot_rlvr.world.problems import generate_problems

    start = time.perf_counter()
    out = opts.out
    run = out / "run"
    if RunFolder(run).holds_run():
        raise RlvrError(f"{out}: already holds a demo; choose a new --out")
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    splits = {"test": generate_problems("test", opts.test_problems), "val": generate_problems("val", opts.val_problems),
              "pool": generate_problems("train", opts.pool_problems)}
    for name, problems in splits.items():
        _write_split(data / f"{name}.jsonl", problems)
    family_of = {p.id: p.family for p in splits["test"]}
    pool_ids = {p.id: p for p in splits["pool"]}
    chosen = example_ids(opts)
    unknown = [e for e in chosen if e not in pool_ids]
    if unknown or not chosen:
        raise RlvrError(f"--example {opts.example!r}: not in the world's training pool (ids train-00000 ... "
                        f"train-{opts.pool_problems - 1:05d}, comma-separated, or all)")
    examples = [pool_ids[e] for e in chosen]
    example = examples[0]

    # k examples share the batch (k must divide it, as the paper's 64 + 64); "all" is ordinary RLVR on the pool.
    source = [f"train_file={data / 'pool.jsonl'}"] if opts.example == "all" else [
        f"pool={data / 'pool.jsonl'}", f"index={','.join(e.id for e in examples)}"]
    settings = [*source, f"val_file={data / 'val.jsonl'}",
                f"seed={opts.seed}", f"save_every={opts.eval_every}", f"val_every={opts.eval_every}"]
    if opts.steps is not None:
        settings.append(f"steps={opts.steps}")
    if opts.entropy_only:
        settings += ["pg_coef=0", "entropy_coef=0.01"]
    # (the defaults add nothing, so the default demo's config is what it always was)
    settings += [f"reward={opts.reward}"] if opts.reward != "math" else []
    settings += [f"loss={opts.loss}"] if opts.loss != "pg" else []
    cfg = resolve_config("tiny-cpu", None, [*settings, *opts.overrides])
    bench = [user_benchmark(f"world_test={data / 'test.jsonl'}")]
    eval_opts = EvalOptions(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens, seed=opts.seed)

    log.info("evaluating the base model on %d test problems", len(splits["test"]))
    tok = load_tokenizer(cfg.model)
    base = load_model(cfg.model)
    evaluate_benchmarks(make_engine(base, tok, batch_rows=256, stop=eval_opts.stop), tok, bench, eval_opts,
                        out_dir=RunFolder(run).eval_dir(0), model=cfg.model, step=0)
    del base
    log.info("training on %d example(s); first: %s (%s family): %s = %s", len(examples), example.id,
             example.family, example.question, example.answer)
    train(cfg, run, quiet=opts.quiet)
    log.info("evaluating every checkpoint on the test split")
    evaluate_run(run, bench, eval_opts, device="cpu", batch_rows=256)
    summary = summarise(run, cfg.steps, examples, family_of, time.perf_counter() - start, opts)
    # (atomic: a summary.json present is what marks the run finished for --controls and --paper)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    _plots(run, out)
    return summary


def example_ids(opts: DemoOptions) -> list[str]:
    """The pool ids the demo trains on: --example's comma-separated ids, or every pool id for "all"."""
    if opts.example == "all":
        from oneshot_rlvr.world.problems import generate_problems

        return [p.id for p in generate_problems("train", opts.pool_problems)]
    return [e.strip() for e in opts.example.split(",") if e.strip()]


def expected_steps(opts: DemoOptions) -> int:
    """The number of steps a demo with these options trains (the tiny-cpu preset's unless overridden)."""
    from oneshot_rlvr.config import resolve_config

    steps = [f"steps={opts.steps}"] if opts.steps is not None else []
    return resolve_config("tiny-cpu", None, [*steps, *opts.overrides]).steps


def finished_summary(opts: DemoOptions) -> dict[str, Any] | None:
    """The summary of a demo that already ran into opts.out with these settings; None when none has started.

    A folder holding a run but no summary (stopped mid-run), or a summary made with other settings, is an
    error: running again would overwrite or mix runs."""
    summary_file = opts.out / "summary.json"
    if not summary_file.exists():
        if RunFolder(opts.out / "run").holds_run():
            raise RlvrError(f"{opts.out}: holds a run but no summary.json (an interrupted run); "
                            "remove that folder to run it again")
        return None
    try:
        summary: dict[str, Any] = json.loads(summary_file.read_text(encoding="utf-8"))
        made = (summary["seed"], summary["steps"], summary["examples"], summary["test_problems"],
                summary.get("reward", "math"), summary.get("loss", "pg"), summary.get("entropy_only", False),
                summary.get("overrides", opts.overrides))  # (summaries written before overrides were recorded)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RlvrError(f"{summary_file}: not a demo summary ({err}); remove that folder to run it again") from None
    wanted = (opts.seed, expected_steps(opts), example_ids(opts), opts.test_problems, opts.reward, opts.loss,
              opts.entropy_only, opts.overrides)
    if made != wanted:
        names = "(seed, steps, examples, test problems, reward, loss, entropy only, settings)"
        raise RlvrError(f"{summary_file}: made with {names} = {made}; this run asks for {wanted}: choose another --out")
    return summary


def run_or_reuse(opts: DemoOptions, what: str) -> tuple[dict[str, Any], bool]:
    """One demo of a command that runs many (--controls, --paper), with a progress line before and after:
    (its summary, whether it was reused). A finished one is read back rather than run again, so a stopped
    table continues where it stopped."""
    summary = finished_summary(opts)
    reused = summary is not None
    if summary is None:
        print(f"{what} ...", flush=True)
        summary = run_demo(opts)
    print(f"{what}: lenient {100 * summary['base_lenient']:.1f}% -> {100 * summary['final_lenient']:.1f}%, "
          f"strict {100 * summary['base_strict']:.1f}% -> {100 * summary['final_strict']:.1f}% "
          f"({summary['wall_seconds']:.0f} s{'; reused ' + str(opts.out / 'summary.json') if reused else ''})",
          flush=True)
    return summary, reused


def summarise(run: Path, steps: int, examples: list[Any], family_of: dict[str, str], seconds: float,
              opts: DemoOptions) -> dict[str, Any]:
    data = load_run(run)
    evals = [(step, results["benchmarks"]["world_test"]) for step, results in data.evals]
    curve = [{"step": step, "strict": r["strict_accuracy"], "lenient": r["accuracy"]} for step, r in evals]
    (first, base_results), (last, final_results) = evals[0], evals[-1]
    base_records = _records(run, first)
    base_fam = _family_table(base_records, family_of)
    final_fam = _family_table(_records(run, last), family_of)
    metrics = data.metrics
    train_acc = [(int(m["step"]), float(m["train_accuracy"])) for m in metrics
                 if "train_accuracy" in m]  # (the step-0 row holds validation only)
    return {
        "base_strict": base_results["strict_accuracy"], "final_strict": final_results["strict_accuracy"],
        "base_lenient": base_results["accuracy"], "final_lenient": final_results["accuracy"],
        "per_family": {fam: {"base_strict": base_fam[fam]["strict"], "final_strict": final_fam[fam]["strict"],
                             "base_lenient": base_fam[fam]["lenient"], "final_lenient": final_fam[fam]["lenient"]}
                       for fam in base_fam},
        "train_example_accuracy": [acc for _, acc in train_acc],
        "test_accuracy_by_step": curve,
        "post_saturation": post_saturation(train_acc, curve),
        "validation_accuracy_by_step": [
            {"step": m["step"], "lenient": m["val_accuracy"], "strict": m.get("val_strict_accuracy")}
            for m in metrics if "val_accuracy" in m
        ],
        "example": {"id": examples[0].id, "family": examples[0].family, "question": examples[0].question,
                    "answer": examples[0].answer},
        "examples": [e.id for e in examples],
        "steps": steps, "seed": opts.seed, "entropy_only": opts.entropy_only, "reward": opts.reward, "loss": opts.loss,
        "overrides": list(opts.overrides),
        "test_problems": len(base_records), "wall_seconds": round(seconds, 1),
    }


def post_saturation(train_acc: list[tuple[int, float]], curve: list[dict[str, Any]],
                    threshold: float = SATURATION) -> dict[str, Any] | None:
    """Test accuracy when the training example first reaches `threshold` and at the best later checkpoint.

    `at_saturation` is the last checkpoint at or before the saturation step (what the model could do
    when its training example stopped teaching it much); `best_after` the best strictly later one.
    None when the example never saturates or no checkpoint follows.
    """
    step = first_reaching(train_acc, threshold)
    if step is None:
        return None
    before = [c for c in curve if c["step"] <= step]
    after = [c for c in curve if c["step"] > step]
    if not before or not after:
        return None
    return {"saturation_step": step, "threshold": threshold, "at_saturation": before[-1],
            "best_after": max(after, key=lambda c: (c["lenient"], c["strict"])), "final": curve[-1]}


def _plots(run: Path, out: Path) -> None:
    try:
        from oneshot_rlvr.report.html import write_report
        from oneshot_rlvr.report.plots import plot_saturation
    except ImportError:  # plots are optional (matplotlib)
        return
    try:
        plot_saturation(run, out / "saturation.png")
        write_report(run)
    except RlvrError as err:
        log.warning("plots skipped: %s", err)


def format_summary(s: dict[str, Any]) -> str:
    shots = len(s.get("examples", [s["example"]["id"]]))
    which = f"example {s['example']['id']} ({s['example']['family']})" if shots == 1 else f"{shots} examples"
    lines = [f"{shots}-shot RLVR on the tiny world: {which}, {s['steps']} steps, {s['wall_seconds']:.0f} s", "",
             f"{'':14}{'strict before':>14}{'after':>8}{'lenient before':>16}{'after':>8}"]

    def row(name: str, d: dict[str, float]) -> str:
        return (f"{name:14}{100 * d['base_strict']:>13.1f}%{100 * d['final_strict']:>7.1f}%"
                f"{100 * d['base_lenient']:>15.1f}%{100 * d['final_lenient']:>7.1f}%")

    lines.append(row("all", s))
    lines += [row(fam, d) for fam, d in s["per_family"].items()]
    acc = s["train_example_accuracy"]
    lines += ["", f"training-example accuracy: {acc[0]:.2f} at step 1 -> {acc[-1]:.2f} at step {len(acc)}"]
    post = s.get("post_saturation")
    if post:
        at, best = post["at_saturation"], post["best_after"]
        lines.append(f"post-saturation: the example first reached {100 * post['threshold']:.0f}% at step "
                     f"{post['saturation_step']}; test lenient {100 * at['lenient']:.1f}% (step {at['step']}) -> "
                     f"{100 * best['lenient']:.1f}% (best later, step {best['step']}), "
                     f"{100 * post['final']['lenient']:.1f}% at the end")
    else:
        lines.append(f"post-saturation: the example did not reach {100 * SATURATION:.0f}% before the last checkpoint")
    return "\n".join(lines)
