"""`rlvr demo --paper`: the paper's pipeline in miniature, on the tiny world.

1. A pool run: ordinary RLVR on the whole training pool (`rlvr demo --example all`), which writes each
   example's accuracy per epoch to `history.json` as every training run does.
2. The ranking: `oneshot_rlvr.select`'s historical variance score on that history, written to
   OUT/ranking.tsv exactly as `rlvr select --history OUT/pool/run` prints it.
3. 1-shot runs (`rlvr demo --example ID`, same steps and seed) on pi1, pi2, the median-ranked example, a
   zero-variance example and a random one, each into OUT/<row>/.
4. One table (OUT/paper.md; rows base, pool, pi1, ...), one plot (OUT/paper.png), OUT/summary.json (the table,
   the ranking's head, the command), OUT/paper.json (every run's full summary) and OUT/index.html.

A row whose OUT/<row>/summary.json exists is reused, so an interrupted pipeline continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_rlvr.demo import DemoOptions, run_or_reuse
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import write_atomic
from oneshot_rlvr.select import Ranking, format_ranking, load_history, rank

log = logging.getLogger("oneshot_rlvr.demo")

ROWS = ("base", "pool", "pi1", "pi2", "median", "zero-variance", "random")
RUNS = ROWS[1:]  # every row but base is a run of its own; base is the pool run's step-0 evaluation
RANKING_HEAD = 10  # ranks kept in summary.json and the report (ranking.tsv has them all)


@dataclass(frozen=True)
class Pick:
    """The example a 1-shot row trains on: its pool id, rank and variance score; example None: no example fits."""

    row: str
    example: str | None
    rank: int | None = None
    score: float | None = None


def _seeded(row: str, seed: int) -> random.Random:
    # One stream per row: the random row's draw does not depend on whether a zero-variance example was found.
    return random.Random(f"{row}-{seed}")


def choose(ranking: Ranking, seed: int) -> list[Pick]:
    """pi1 (rank 1), pi2 (rank 2), median (rank (N + 1) // 2), a seeded choice among the other examples whose
    score is 0, and a seeded random example among those not chosen yet."""
    if len(ranking) < 5:
        raise RlvrError(f"the pool run's history ranks {len(ranking)} examples; the pipeline needs at least 5 "
                        "(pi1, pi2, median, zero-variance, random): use a larger --pool-problems")
    place = {key: r for r, (key, _) in enumerate(ranking, start=1)}
    score = dict(ranking)

    def pick(row: str, key: str | None) -> Pick:
        return Pick(row, key, place[key], score[key]) if key is not None else Pick(row, None)

    middle = ranking[(len(ranking) - 1) // 2][0]
    picks = [pick("pi1", ranking[0][0]), pick("pi2", ranking[1][0]), pick("median", middle)]
    taken = {p.example for p in picks}
    zero = sorted(key for key, s in ranking if s == 0.0 and key not in taken)
    picks.append(pick("zero-variance", _seeded("zero-variance", seed).choice(zero) if zero else None))
    taken.add(picks[-1].example)
    picks.append(pick("random", _seeded("random", seed).choice(sorted(key for key in score if key not in taken))))
    return picks


def paper_command(opts: DemoOptions) -> str:
    """The command line that runs this pipeline (written into the summary beside its figures)."""
    parts = ["rlvr", "demo", "--paper", "--out", str(opts.out), "--seed", str(opts.seed)]
    parts += ["--steps", str(opts.steps)] if opts.steps is not None else []
    parts += ["--test-problems", str(opts.test_problems), "--eval-every", str(opts.eval_every)]
    parts += ["--pool-problems", str(opts.pool_problems)] if opts.pool_problems != DemoOptions.pool_problems else []
    return shlex.join([*parts, *opts.overrides])


def _saturation(run: Path) -> int | None:
    """The step at which the run's training accuracy first reaches 90% (the pool run: the pool batch's)."""
    from oneshot_rlvr.report.rundata import load_run

    return load_run(run).saturation_step()


def _run_row(base: DemoOptions, k: int, label: str, example: str, pick: Pick | None) -> dict[str, Any]:
    """One run of the pipeline into OUT/<label>/ (example "all": the pool run), or its finished summary."""
    opts = dataclasses.replace(base, out=base.out / label, example=example, quiet=True)
    what = f"[{k}/{len(RUNS)}] {label} ({example if pick else f'all {base.pool_problems} pool problems'})"
    summary, reused = run_or_reuse(opts, what)
    return {"row": label, "example": example, "rank": pick.rank if pick else None,
            "score": pick.score if pick else None, "reused": reused,
            "saturation_step": _saturation(opts.out / "run"), "summary": summary}


def _check_base(runs: list[dict[str, Any]]) -> None:
    """The base row is the pool run's step-0 evaluation; every run evaluated the same base model greedily, so
    their own step-0 figures should agree with it."""
    pool = runs[0]["summary"]
    differ = [r["row"] for r in runs[1:] if r["summary"] is not None and any(
        r["summary"][key] != pool[key] for key in ("base_strict", "base_lenient"))]
    if differ:
        log.warning("the base model's test accuracy in %s differs from the pool run's (the base row's)",
                    ", ".join(differ))


def run_paper(base: DemoOptions) -> str:
    """Run the pipeline into base.out (continuing a pipeline stopped there); returns the table (markdown)."""
    runs = [_run_row(base, 1, "pool", "all", None)]
    history = base.out / "pool" / "run"
    ranking = rank(load_history(history), "std")
    write_atomic(base.out / "ranking.tsv", format_ranking(ranking, "tsv"))
    zero = sum(1 for _, score in ranking if score == 0.0)
    print(f"ranking of {len(ranking)} examples by the std of their history: {base.out / 'ranking.tsv'} "
          f"({zero} with zero variance)", flush=True)
    if len({score for _, score in ranking}) == 1:
        log.warning("all %d examples score %g: the ranking is only their order in the history", len(ranking),
                    ranking[0][1])
    for k, pick in enumerate(choose(ranking, base.seed), start=2):
        if pick.example is None:
            print(f"[{k}/{len(RUNS)}] {pick.row}: none (no other example has zero variance); skipped", flush=True)
            runs.append({"row": pick.row, "example": None, "rank": None, "score": None, "reused": False,
                         "saturation_step": None, "summary": None})
        else:
            runs.append(_run_row(base, k, pick.row, pick.example, pick))
    _check_base(runs)
    return write_outputs(base, runs, ranking, paper_command(base))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def table_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows, base first: figures in [0, 1]; a skipped row keeps its name with example None."""
    pool = runs[0]["summary"]
    base = {"row": "base", "example": None, "rank": None, "score": None, "strict": [pool["base_strict"]],
            "lenient": [pool["base_lenient"]], "saturation_step": None, "wall_seconds": None, "reused": None,
            "family_lenient": {fam: [d["base_lenient"]] for fam, d in pool["per_family"].items()}}
    rows = [base]
    for run in runs:
        s = run["summary"]
        row = {k: run[k] for k in ("row", "example", "rank", "score", "saturation_step", "reused")}
        if s is not None:
            row |= {"strict": [s["base_strict"], s["final_strict"]], "lenient": [s["base_lenient"], s["final_lenient"]],
                    "family_lenient": {fam: [d["base_lenient"], d["final_lenient"]]
                                       for fam, d in s["per_family"].items()},
                    "wall_seconds": s["wall_seconds"]}
        rows.append(row)
    return rows


def table_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and body of the table: strict and lenient accuracy before -> after (percent); per family, lenient
    after (the base row holds every run's before); the step the training accuracy first reaches 90%; wall time."""
    families = list(rows[0]["family_lenient"])
    header = ["run", "example", "std score", "strict", "lenient", *families, "first >= 90%", "wall"]
    body = []
    for row in rows:
        if row["row"] != "base" and "strict" not in row:
            body.append([row["row"], "none", *("" for _ in header[2:])])
            continue
        example = {"base": "-", "pool": "all"}.get(row["row"]) or f"{row['example']} (rank {row['rank']})"
        sat = row["saturation_step"]
        body.append([row["row"], example, "-" if row["score"] is None else f"{row['score']:.3f}",
                     " -> ".join(map(_pct, row["strict"])), " -> ".join(map(_pct, row["lenient"])),
                     *(_pct(row["family_lenient"][fam][-1]) for fam in families),
                     "-" if row["row"] == "base" else ("never" if sat is None else f"step {sat}"),
                     "-" if row["wall_seconds"] is None else f"{row['wall_seconds']:.0f} s"])
    return header, body


def format_paper(rows: list[dict[str, Any]]) -> str:
    """The table in markdown."""
    header, body = table_cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def _plot(runs: list[dict[str, Any]], out_png: Path) -> str | None:
    """Test lenient accuracy by step, one line per run; returns why it was not drawn, or None."""
    from oneshot_rlvr.report.plots import integer_steps, new_figure, percent_axis

    try:
        fig = new_figure()
    except RlvrError as err:  # matplotlib is optional
        return str(err)
    ax = fig.add_subplot()
    for run in runs:
        if run["summary"] is not None:
            curve = run["summary"]["test_accuracy_by_step"]
            ax.plot([c["step"] for c in curve], [c["lenient"] for c in curve], marker="o", markersize=3,
                    label=run["row"] if run["example"] == "all" else f"{run['row']} ({run['example']})")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy (lenient)")
    ax.set_ylim(-0.02, 1.02)  # the whole range: runs of different pictures stay comparable
    ax.set_title("The paper's pipeline on the tiny world: test accuracy by step")
    percent_axis(ax)
    integer_steps(ax)
    ax.legend(fontsize=8)
    fig.savefig(out_png)
    return None


def _html(command: str, rows: list[dict[str, Any]], ranking: Ranking, zero: int, plot: Path | None,
          note: str | None) -> str:
    from html import escape

    from oneshot_rlvr.report.html import html_page, html_table, png_uri

    header, body = table_cells(rows)
    table = html_table([escape(h) for h in header], [[escape(c) for c in cells] for cells in body])
    head = [[str(r), escape(key), f"{score:.6f}"] for r, (key, score) in enumerate(ranking[:RANKING_HEAD], start=1)]
    picture = f"<p><img alt='test accuracy by step' src='{png_uri(plot)}'></p>" if plot else \
        f"<p class='note'>Plot not drawn: {escape(note or '')}</p>"
    return html_page("rlvr demo --paper", (
        f"<h1>The paper's pipeline in miniature</h1>"
        f"<p><code>{escape(command)}</code></p><h2>Results</h2>{table}"
        f"<p class='note'>Before -&gt; after on the world's test split; per family: lenient after "
        f"(the base row: before).</p>{picture}"
        f"<h2>Ranking (std of each example's history)</h2><p>{len(ranking)} examples, {zero} with zero "
        f"variance; the head:</p>{html_table(['rank', 'id', 'score'], head)}"))


def write_outputs(base: DemoOptions, runs: list[dict[str, Any]], ranking: Ranking, command: str) -> str:
    """OUT/paper.md, paper.json, summary.json, paper.png and index.html; returns the table."""
    out = base.out
    rows = table_rows(runs)
    table = format_paper(rows)
    zero = sum(1 for _, score in ranking if score == 0.0)
    walls = [r["summary"]["wall_seconds"] for r in runs if r["summary"] is not None]
    summary = {"command": command, "seed": base.seed, "steps": runs[0]["summary"]["steps"],
               "pool_problems": base.pool_problems, "test_problems": base.test_problems, "rows": rows,
               "ranking_size": len(ranking), "zero_variance": zero,
               "ranking_head": [{"rank": r, "index": key, "score": score}
                                for r, (key, score) in enumerate(ranking[:RANKING_HEAD], start=1)],
               "wall_seconds_total": round(sum(walls), 1)}
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    write_atomic(out / "paper.json", json.dumps(runs, indent=2))
    write_atomic(out / "paper.md", table + "\n")
    png = out / "paper.png"
    note = _plot(runs, png)
    if note:
        log.warning("plot skipped: %s", note)
    write_atomic(out / "index.html", _html(command, rows, ranking, zero, None if note else png, note))
    return table
