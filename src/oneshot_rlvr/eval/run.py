"""Batched evaluation: generate, grade, keep one record per response, summarise, write, print.

`evaluate_problems` is the library entry point (the trainer calls it for periodic validation);
`evaluate_benchmarks` runs registry benchmarks with their protocols and writes `results.json` and
`records.jsonl`. Generation goes in chunks; chunk i is graded in a worker thread while chunk i+1 is
generated, so the (CPU-bound, sympy) grader hides behind the (GPU-bound) sampler.

A record (one line of records.jsonl) holds: benchmark, problem_index, problem_id, sample, prompt (as the
model saw it, template applied), response, extracted (the answer the lenient grader read, or null),
gold, correct (lenient verdict), strict_correct (the last \\boxed{} must match), boxed (has a
\\boxed{}), tokens (generated tokens, the stop token included), finish_reason ("eos" or "length") and
reflection (the non-zero self-reflection word counts). With the harness grader (`harness_grading`),
also harness_correct, harness_answer and harness_timed_out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from oneshot_rlvr import runfolder
from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.data.templates import render_prompt
from oneshot_rlvr.eval.analysis import has_boxed, reflection_counts
from oneshot_rlvr.eval.benchmarks import (
    DEFAULT_TEMPLATE,
    PAPER_BENCHMARKS,
    Benchmark,
    Protocol,
    load_benchmark,
    resolve_data_dir,
)
from oneshot_rlvr.eval.choice import extract_choice, grade_choice
from oneshot_rlvr.eval.metrics import benchmark_average, summarize
from oneshot_rlvr.rollout.base import RolloutEngine, Rollouts, SamplingParams

log = logging.getLogger(__name__)

RESULTS_FORMAT = 1


@dataclass
class EvalOptions:
    """Settings of a benchmark evaluation. Unset (None) decoding fields keep each benchmark's protocol."""

    data_dir: str | None = None
    """Folder of the benchmark files (else $RLVR_EVAL_DATA, else the shared harness folder)."""
    limit: int | None = None
    """Evaluate only the first N problems of each benchmark."""
    template: str = DEFAULT_TEMPLATE
    """Prompt template for benchmarks that do not fix their own."""
    n: int | None = None
    """Samples per problem for every benchmark (default: the protocol's 1 or 8)."""
    temperature: float | None = None
    """Sampling temperature for every benchmark (default: the protocol's 0 or 0.6)."""
    top_p: float | None = None
    """Nucleus mass for every benchmark (default 1.0)."""
    max_new_tokens: int | None = None
    """Response length limit (default: the protocol's 3072)."""
    seed: int | None = 0
    """Sampling seed: response i of a benchmark draws from the stream of (seed, i), so the same seed gives the
    same records whatever the engine's batch and the chunking (bit for bit on a float32 CPU while the chunks'
    prompts share the same opening: it is prefilled once per call, which can round differently)."""
    chunk_rows: int | None = None
    """Responses per generation call (default: 4 x the engine's max_batch_rows: continuous batching refills its
    slots within a call; between calls the records so far are graded, logged and kept if a later call fails)."""
    grader: str = "ours"
    """ours, harness (the paper's evaluation harness) or both; see `harness_grading`."""
    stop: str = "harness"
    """What ends a response (`oneshot_rlvr.models.stops`): harness stops where the Qwen2.5-Math harness does, at
    the EOS ids and the tokens </s>, <|im_end|>, <|endoftext|> (151645 and 151643 for Qwen2.5 models)."""


DEFAULT_GRADER = "math-verify"
"""The rule that grades math benchmarks (lenient extraction, then math-verify equality), as results record it."""


def protocol_for(bench: Benchmark, options: EvalOptions) -> Protocol:
    """The benchmark's protocol with the options' overrides applied."""
    p = bench.protocol
    return Protocol(
        n=options.n if options.n is not None else p.n,
        temperature=options.temperature if options.temperature is not None else p.temperature,
        top_p=options.top_p if options.top_p is not None else p.top_p,
        max_new_tokens=options.max_new_tokens if options.max_new_tokens is not None else p.max_new_tokens,
    )


def run_protocol(bench: Benchmark, options: EvalOptions) -> dict[str, Any]:
    """Everything that decides a benchmark's numbers, recorded beside them in results.json: `eval --run`
    reuses a step's results only for the same protocol. Other options join as keys of this dict."""
    proto = protocol_for(bench, options)
    if proto.temperature <= 0 and proto.n > 1:  # greedy samples once, whatever n says
        proto = replace(proto, n=1)
    return {
        **asdict(proto), "template": bench.template or options.template, "limit": options.limit,
        "seed": options.seed if proto.temperature > 0 else None,  # greedy decoding does not depend on it
        "grader": _graders(options.grader) if bench.kind == "math" else bench.kind,
        "stop": options.stop,
    }


def _graders(grader: str) -> str:
    """The verdicts a math benchmark's records hold: ours always; the harness's too with harness or both (which
    differ only in the table printed, so a step graded under one is not graded again under the other)."""
    return DEFAULT_GRADER if grader == "ours" else f"{DEFAULT_GRADER}+harness"


CHUNK_BATCHES = 4
"""A generation call holds this many engine batches (`max_batch_rows`) by default: enough waiting rows for
continuous batching to keep its slots full, few enough to grade and report as the benchmark goes."""


def evaluate_problems(
    engine: RolloutEngine,
    problems: Sequence[Problem],
    *,
    template: str,
    tokenizer: Any,
    sampling: SamplingParams,
    n: int = 1,
    seed: int | None = None,
    benchmark: str = "custom",
    kind: str = "math",
    chunk_rows: int | None = None,
    grader: str = "ours",
    on_failure: Callable[[list[dict[str, Any]]], object] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate n responses per problem, grade them, and return (metrics, records).

    If generation fails part way (a served model that goes away), `on_failure` gets the records of
    the chunks generated before it, graded, and the error goes on up.

    Greedy decoding (temperature 0) gives one distinct response, so n is then 1. `kind` "choice"
    grades letters (ARC) instead of math answers; `grader` "harness" or "both" adds the harness's
    verdicts to math records. Metrics are those of `metrics.summarize`.
    """
    if sampling.greedy and n > 1:
        log.warning("%s: greedy decoding gives one response per problem; using n=1, not %d", benchmark, n)
        n = 1
    if n < 1:
        raise ValueError(f"n must be >= 1 (got {n})")
    if kind not in ("math", "choice"):
        raise ValueError(f"kind must be 'math' or 'choice' (got {kind!r})")
    prompts = [render_prompt(p.prompt, template, tokenizer) for p in problems]
    rows = chunk_rows or CHUNK_BATCHES * engine.max_batch_rows
    per_chunk = max(1, rows // n)
    records: list[dict[str, Any]] = []
    problem_list = list(problems)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grade") as pool:
        pending: list[Future[list[dict[str, Any]]]] = []
        for start in range(0, len(problems), per_chunk):
            try:
                out = engine.generate(prompts[start : start + per_chunk], n, sampling, seed=seed, first_row=start * n)
            except Exception:
                if on_failure is not None:
                    on_failure(_graded_so_far(pending))
                raise
            for fut in pending:  # a grading error stops the run now, not after all the generation
                if fut.done():
                    fut.result()
            pending.append(pool.submit(_grade_chunk, benchmark, kind, problem_list, prompts, start, n, out,
                                       grader))
            log.info("%s: generated %d/%d problems", benchmark, min(start + per_chunk, len(problems)),
                     len(problems))
        for fut in pending:
            records.extend(fut.result())
    return summarize(records), records


def _graded_so_far(pending: list[Future[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The records of the chunks whose grading finishes, up to the first that fails."""
    records: list[dict[str, Any]] = []
    for fut in pending:
        if fut.exception() is not None:
            break
        records.extend(fut.result())
    return records


def _grade_chunk(benchmark: str, kind: str, problems: list[Problem], prompts: list[str], start: int,
                 n: int, out: Rollouts, grader: str = "ours") -> list[dict[str, Any]]:
    chunk = [problems[start + i // n] for i in range(len(out.texts))]
    responses = out.texts
    if kind == "choice":
        lenient = [grade_choice(p, r) for p, r in zip(chunk, responses, strict=True)]
        strict = [grade_choice(p, r, require_boxed=True) for p, r in zip(chunk, responses, strict=True)]
        extracted = [extract_choice(r, "".join(p.meta.get("labels", "ABCD")), p.meta.get("choices", ()))
                     for p, r in zip(chunk, responses, strict=True)]
    else:
        from oneshot_rlvr.reward import extract_answer, verify_batch

        golds = [p.answer for p in chunk]
        # each sympy comparison runs under the grader's own limit (GraderConfig.timeout)
        lenient = verify_batch(golds, responses, require_boxed=False)
        strict = verify_batch(golds, responses, require_boxed=True)
        extracted = [extract_answer(r, mode="lenient") for r in responses]
    harness: list[dict[str, Any]] = [{} for _ in responses]
    if kind == "math" and grader != "ours":
        from oneshot_rlvr.eval.harness_grading import harness_fields

        harness = harness_fields(benchmark, chunk, responses)  # under the harness's own 3 s limit
    tokens = out.response_mask.sum(dim=1).tolist()
    records = []
    for i, text in enumerate(responses):
        idx = start + i // n
        counts = reflection_counts(text)
        records.append({
            "benchmark": benchmark, "problem_index": idx, "problem_id": problems[idx].id, "sample": i % n,
            "prompt": prompts[idx], "response": text, "extracted": extracted[i], "gold": problems[idx].answer,
            "correct": bool(lenient[i]), "strict_correct": bool(strict[i]), "boxed": has_boxed(text),
            "tokens": int(tokens[i]), "finish_reason": out.finish_reasons[i],
            "reflection": {w: c for w, c in counts.items() if c}, **harness[i],
        })
    return records


def load_benchmarks(
    benchmarks: Sequence[Benchmark], options: EvalOptions | None = None
) -> dict[str, list[Problem]]:
    """name -> problems for each benchmark (honouring data_dir and limit); fails on the first bad one."""
    opts = options or EvalOptions()
    return {b.name: load_benchmark(b, data_dir=opts.data_dir, limit=opts.limit) for b in benchmarks}


def evaluate_benchmarks(
    engine: RolloutEngine,
    tokenizer: Any,
    benchmarks: Sequence[Benchmark],
    options: EvalOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    model: str = "",
    step: int | None = None,
    problems: Mapping[str, Sequence[Problem]] | None = None,
    source: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run each benchmark with its protocol; return (results, records) and write them to out_dir.

    `problems` (name -> problems, from `load_benchmarks`) skips loading; otherwise every benchmark
    is loaded before any generation, so a missing file fails at once. `source` (where the responses
    came from, e.g. a served model's endpoint and name) is added to every record and to the results.
    A generation error leaves the records graded so far in out_dir/records.partial.jsonl.
    """
    note = dict(source or {})
    opts = options or EvalOptions()
    loaded = problems if problems is not None else load_benchmarks(benchmarks, opts)
    per_benchmark: dict[str, Any] = {}
    all_records: list[dict[str, Any]] = []
    for bench in benchmarks:
        bench_problems = loaded[bench.name]
        proto = protocol_for(bench, opts)
        template = bench.template or opts.template
        began = time.perf_counter()
        metrics, records = evaluate_problems(
            engine, bench_problems, template=template, tokenizer=tokenizer, sampling=proto.sampling(),
            n=proto.n, seed=opts.seed, benchmark=bench.name, kind=bench.kind, chunk_rows=opts.chunk_rows,
            grader=opts.grader,
            on_failure=None if out_dir is None else lambda part: write_partial(
                out_dir, [*all_records, *({**r, **note} for r in part)]),
        )
        records = [{**r, **note} for r in records] if note else records
        per_benchmark[bench.name] = {
            "label": bench.column, "kind": bench.kind, "protocol": run_protocol(bench, opts),
            **metrics, "seconds": round(time.perf_counter() - began, 3),
        }
        all_records.extend(records)
        log.info("%s: accuracy %.1f%% over %d problems", bench.name, 100 * metrics["accuracy"],
                 len(bench_problems))
    results = {
        "format": RESULTS_FORMAT,
        "model": model,
        "step": step,
        "settings": {**{k: v for k, v in asdict(opts).items() if k != "chunk_rows"},
                     "data_dir": str(resolve_data_dir(opts.data_dir)),
                     "stop_ids": getattr(engine, "stop_ids", None)},
        **({"source": note} if note else {}),
        "benchmarks": per_benchmark,
        "average": benchmark_average(per_benchmark, PAPER_BENCHMARKS),
    }
    if opts.grader != "ours":
        results["harness_average"] = benchmark_average(per_benchmark, PAPER_BENCHMARKS, key="harness_accuracy")
    if out_dir is not None:
        write_outputs(out_dir, results, all_records)
        (Path(out_dir) / "records.partial.jsonl").unlink(missing_ok=True)  # an earlier failure's, now redone
    return results, all_records


def write_outputs(
    out_dir: str | Path, results: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
) -> Path:
    """results.json and records.jsonl under out_dir (created); records are written first, so a
    results.json on disk always has its records next to it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runfolder.write_atomic(out / runfolder.RECORDS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    runfolder.write_atomic(out / runfolder.RESULTS, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return out


def write_partial(out_dir: str | Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """records.partial.jsonl: what an evaluation that failed part way had graded (no results.json is
    written for it, so it never passes for a finished evaluation)."""
    path = Path(out_dir) / "records.partial.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    log.error("kept the %d records graded before the failure in %s", len(records), path)
    return path


def format_table(rows: Sequence[tuple[str, Mapping[str, Any]]], grader: str = "ours") -> str:
    """A text table in the paper's layout: one row per (name, results); accuracy in percent.

    Columns: MATH500, AIME24, AIME25, AMC23, Minerva, Olympiad, Avg, then any other benchmarks.
    `grader` picks the verdicts shown: ours, harness, or both as "harness (ours)" under a note.
    """
    from oneshot_rlvr.eval.benchmarks import BENCHMARKS
    from oneshot_rlvr.eval.harness_grading import accuracy_cell

    extra: list[str] = []
    for _, res in rows:
        extra += [b for b in res.get("benchmarks", {}) if b not in PAPER_BENCHMARKS and b not in extra]
    names = [*PAPER_BENCHMARKS, "_avg", *extra]

    def label(name: str) -> str:
        if name == "_avg":
            return "Avg"
        return BENCHMARKS[name].column if name in BENCHMARKS else name

    table = [["", *(label(n) for n in names)]]
    table += [[title, *(accuracy_cell(res, n, grader) for n in names)] for title, res in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    note = {"harness": ["accuracy (%) under the paper's harness rule"],
            "both": ["accuracy (%) under the paper's harness rule, ours in brackets"]}.get(grader, [])
    return "\n".join([*note, *(line(r) for r in table)])

