"""The run report: one self-contained HTML page (plots embedded as data URIs, no external CSS or JS).

The page holds the settings that matter, first / last / best values of the headline metrics, the
evaluation table in the paper's columns, the plots, and sample validation responses from the first and
last validated steps. Every string from the run folder is HTML-escaped.
"""

from __future__ import annotations

import base64
import math
import statistics
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from oneshot_rlvr.report.plots import Plot, draw_plots
from oneshot_rlvr.report.rundata import PAPER_COLUMNS, RunData, load_run
from oneshot_rlvr.runfolder import RunFolder, read_jsonl, write_atomic

SAMPLE_PROBLEMS = 3  # validation responses shown per sampled step
RESPONSE_CHARS = 4000  # longer responses are cut in the page (the records keep them whole)

# Settings shown at the top of the page, in this order, when the config has them (autocast: what `auto` chose on
# the machine that trained, which changes the numerics).
KEY_SETTINGS = ("model", "algo", "lr", "n", "temperature", "batch_size", "mini_batch_size", "steps", "kl_coef",
                "entropy_coef", "pg_coef", "max_new_tokens", "template", "autocast", "lora_r", "seed", "val_file")

# (label, metrics key, percent?, has a best value?)
HEADLINES = (
    ("reward", "reward_mean", False, True),
    ("training accuracy", "train_accuracy", True, True),
    ("validation accuracy", "val_accuracy", True, True),
    ("validation strict accuracy", "val_strict_accuracy", True, True),
    ("validation format rate", "val_format_rate", True, False),
    ("entropy", "entropy", False, False),
    ("KL to reference", "kl", False, False),
    ("mean response length", "response_length_mean", False, False),
)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.path { color: #666; font-family: monospace; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #777; font-style: italic; }
pre { background: #f7f7f7; padding: 0.6em; white-space: pre-wrap; word-wrap: break-word; font-size: 0.85em;
      max-height: 28em; overflow: auto; }
details { margin: 0.4em 0; } summary { cursor: pointer; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.grid { display: flex; flex-wrap: wrap; gap: 2em; }
"""


def _num(value: Any, percent: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else escape(str(value))
    if not math.isfinite(value):
        return "nan"
    if percent:
        return f"{100 * value:.1f}%"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.4g}"


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An HTML table; cells are already escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _training_data(cfg: dict[str, Any]) -> str | None:
    if cfg.get("problem"):
        problem = str(cfg["problem"])
        short = problem if len(problem) <= 120 else problem[:117] + "..."
        return f"inline problem: {short} (answer {cfg.get('answer', '?')})"
    if cfg.get("pool"):
        return f"{cfg['pool']} (index {cfg.get('index', '?')})"
    return str(cfg["train_file"]) if cfg.get("train_file") else None


def settings_section(run: RunData) -> str:
    if not run.config:
        return "<p class='note'>No config.yaml in this run folder.</p>"
    rows = [("training data", escape(d))] if (d := _training_data(run.config)) else []
    rows += [(escape(k), _num(run.config[k])) for k in KEY_SETTINGS if k in run.config and run.config[k] != ""]
    return html_table(("setting", "value"), rows)


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def facts_section(run: RunData) -> str:
    steps, _ = run.series("reward_mean")
    planned = run.config.get("steps")
    trained = [r for r in run.metrics if r.get("step") != 0]  # (step 0: validation before training)
    rows = [("steps logged", f"{len(trained)}" + (f" of {planned}" if planned else ""))]
    if steps:
        rows.append(("last step", str(steps[-1])))
    step_time = [v for v in run.series("time_step")[1] if math.isfinite(v)]
    if step_time:
        rows.append(("training time (sum of steps)", _hms(sum(step_time))))
        rows.append(("mean time per step", f"{statistics.fmean(step_time):.2f} s"))
    speed = [v for v in run.series("tokens_per_s")[1] if math.isfinite(v)]
    if speed:
        rows.append(("generated tokens per second (median)", f"{statistics.median(speed):.1f}"))
    memory = [v for v in run.series("peak_memory_gb")[1] if math.isfinite(v)]
    if memory:
        rows.append(("peak memory", f"{max(memory):.2f} GB"))
    sat = run.saturation_step()
    rows.append(("training accuracy first >= 90%", f"step {sat}" if sat is not None else "not reached"))
    return html_table(("run", ""), [(escape(label), escape(value)) for label, value in rows])


def headline_section(run: RunData) -> str:
    rows = []
    for label, key, percent, has_best in HEADLINES:
        points = [(s, v) for s, v in zip(*run.series(key), strict=True) if math.isfinite(v)]
        if not points:
            continue
        first, last = points[0], points[-1]
        best = max(points, key=lambda p: p[1]) if has_best else None
        rows.append((escape(label), f"{_num(first[1], percent)} (step {first[0]})",
                     f"{_num(last[1], percent)} (step {last[0]})",
                     f"{_num(best[1], percent)} (step {best[0]})" if best else "-"))
    if not rows:
        return "<p class='note'>metrics.jsonl has no rows yet.</p>"
    return html_table(("metric", "first", "last", "best"), rows)


def _eval_row(step: int, results: dict[str, Any], names: Sequence[str], n_paper: int, key: str) -> list[str]:
    """One step's cells: the paper's benchmarks, their unweighted mean (all six or "-"), the others."""
    per = results.get("benchmarks") or {}
    values = {name: (per.get(name) or {}).get(key) for name in [*names, *(n for n, _ in PAPER_COLUMNS)]}
    row = [str(step), *(_num(values[name], percent=True) for name in names[:n_paper])]
    if n_paper:
        six = [values[name] for name, _ in PAPER_COLUMNS]
        numbers = [float(v) for v in six if isinstance(v, (int, float)) and not isinstance(v, bool)]
        row.append(_num(statistics.fmean(numbers), percent=True) if len(numbers) == len(six) else "-")
    return row + [_num(values[name], percent=True) for name in names[n_paper:]]


def eval_section(run: RunData) -> str:
    """The benchmark results by step, in the paper's columns (accuracy, then strict accuracy)."""
    if not run.evals:
        return "<p class='note'>No eval/&lt;step&gt;/results.json: run <code>rlvr eval --run RUN</code>.</p>"
    benchmarks = run.eval_benchmarks()
    paper = {name for name, _ in PAPER_COLUMNS}
    n_paper = sum(1 for name, _ in benchmarks if name in paper)
    parts = []
    for title, key in (("Accuracy (lenient grader, the paper's)", "accuracy"),
                       ("Strict accuracy (last \\boxed{} must be right)", "strict_accuracy")):
        header = ["step", *(escape(label) for name, label in benchmarks[:n_paper])]
        header += ["Avg"] if n_paper else []
        header += [escape(label) for _, label in benchmarks[n_paper:]]
        rows = [_eval_row(step, results, [name for name, _ in benchmarks], n_paper, key)
                for step, results in run.evals]
        parts.append(f"<h3>{escape(title)}</h3>" + html_table(header, rows))
    if n_paper and n_paper < len(PAPER_COLUMNS):
        parts.append("<p class='note'>Avg is shown only for steps with all six of the paper's benchmarks.</p>")
    return "\n".join(parts)


def png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def plots_section(plots: Sequence[Plot]) -> str:
    parts = []
    for plot in plots:  # a drawn plot carries its own title
        if plot.path is None:
            parts.append(f"<h3 id='plot-{plot.key}'>{escape(plot.title)}</h3>"
                         f"<p class='note'>Not drawn: {escape(plot.note)}.</p>")
        else:
            parts.append(f"<p><img id='plot-{plot.key}' alt='{escape(plot.title)}' src='{png_uri(plot.path)}'></p>")
    return "\n".join(parts)


def _verdict(ok: Any) -> str:
    return "<span class='ok'>right</span>" if ok else "<span class='bad'>wrong</span>"


def _record_html(r: dict[str, Any], open_: bool) -> str:
    response = str(r.get("response", ""))
    cut = len(response) > RESPONSE_CHARS
    shown = response[:RESPONSE_CHARS] + (f"\n[... {len(response) - RESPONSE_CHARS} more characters]" if cut else "")
    if not response.strip():
        shown = f"[empty response: {len(response)} whitespace characters]"
    extracted = r.get("extracted")
    summary = (f"problem {escape(str(r.get('problem_id', r.get('problem_index', '?'))))} &middot; "
               f"gold <code>{escape(str(r.get('gold', '')))}</code> &middot; "
               f"extracted <code>{escape('(none)' if extracted is None else str(extracted))}</code> &middot; "
               f"lenient {_verdict(r.get('correct'))}, strict {_verdict(r.get('strict_correct'))} &middot; "
               f"{escape(str(r.get('tokens', '?')))} tokens ({escape(str(r.get('finish_reason', '?')))})")
    prompt = f"<details><summary>prompt</summary><pre>{escape(str(r.get('prompt', '')))}</pre></details>"
    return (f"<details{' open' if open_ else ''}><summary>{summary}</summary>{prompt}"
            f"<pre>{escape(shown)}</pre></details>")


def samples_section(run: RunData) -> str:
    """The same few validation problems at the first and the last validated step."""
    if not run.validation:
        return "<p class='note'>No validation/step_N.jsonl records in this run (set val_file to validate).</p>"
    chosen = [run.validation[0]] + ([run.validation[-1]] if len(run.validation) > 1 else [])
    first_records = read_jsonl(chosen[0][1])
    ids = list(dict.fromkeys(r.get("problem_index") for r in first_records))[:SAMPLE_PROBLEMS]
    parts = []
    for step, path in chosen:
        records = read_jsonl(path)
        right = sum(bool(r.get("correct")) for r in records)
        shown = [r for r in records if r.get("problem_index") in ids and r.get("sample", 0) == 0]
        parts.append(f"<h3>Step {step}: {right} of {len(records)} validation responses right (lenient)</h3>")
        parts += [_record_html(r, open_=i == 0) for i, r in enumerate(shown)]
    return "\n".join(parts)


def render(run: RunData, plots: Sequence[Plot]) -> str:
    """The page's HTML for a read run and its drawn plots."""
    name = escape(run.path.resolve().name)
    sections = [
        f"<h1>rlvr report: {name}</h1><p class='path'>{escape(str(run.path.resolve()))}</p>",
        "<h2>Summary</h2><div class='grid'><div>", settings_section(run), "</div><div>", facts_section(run),
        "</div></div>", headline_section(run),
        "<h2>Benchmarks</h2>", eval_section(run),
        "<h2>Plots</h2>", plots_section(plots),
        "<h2>Sample validation responses</h2>", samples_section(run),
    ]
    return html_page(f"rlvr report: {name}", "\n".join(sections))


def html_page(title: str, body: str) -> str:
    """A whole page in the report's style; `title` and `body` are HTML already (escaped where needed)."""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report page of a run folder (default RUN/report/index.html) and return its path.

    The plots are also left as PNG files in `<page stem>_files/` beside the page; the page itself
    embeds them and needs nothing else.
    """
    run = load_run(run_dir)
    page = Path(out) if out is not None else RunFolder(run.path).report
    plots = draw_plots(run, page.parent / f"{page.stem}_files")
    page.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(page, render(run, plots))
    return page
