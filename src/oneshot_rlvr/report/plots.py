"""PNG plots of a run folder, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

matplotlib is the `plots` extra and is imported only when a plot is drawn. A plot whose data is not in
the run folder is skipped with a note saying what is missing, never drawn empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError, install_hint
from oneshot_rlvr.report.rundata import RunData, Series, load_run, read_jsonl

INSTALL_HINT = f"plots need matplotlib: {install_hint('plots')}"
_MARKERS_UP_TO = 40  # points per line below which each point is marked
_SMOOTH_FROM = 60  # points per line from which a moving average is drawn over the raw curve


@dataclass
class Plot:
    """One plot of the page: drawn into `path`, or skipped with `note` saying why."""

    key: str
    title: str
    path: Path | None = None
    note: str = ""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RlvrError(INSTALL_HINT) from None


def new_figure(width: float = 8.0, height: float = 4.2) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def percent_axis(ax: Any) -> None:
    """Fractions as percentages; the margin below 0 (room for a curve at 0) gets no tick labels."""
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.0f}%" if v > -1e-9 else ""))


def integer_steps(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last `window` finite values (NaN where none)."""
    out = []
    for i in range(len(values)):
        chunk = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out


def _line(ax: Any, series: Series, label: str, *, smooth: bool = False, **style: Any) -> list[Any]:
    """One curve; few points are marked, many are drawn faint under their moving average."""
    steps, values = series
    if len(steps) <= _MARKERS_UP_TO:
        style.setdefault("marker", "o")
        style.setdefault("markersize", 3.5)
    if smooth and len(steps) >= _SMOOTH_FROM:
        faint = {k: v for k, v in style.items() if k not in ("linewidth", "alpha")}
        (raw,) = ax.plot(steps, values, alpha=0.25, linewidth=0.8, **faint)
        window = max(3, len(steps) // 30)
        style["color"] = raw.get_color()
        return list(ax.plot(steps, _moving_average(values, window), label=f"{label} (mean of {window})", **style))
    return list(ax.plot(steps, values, label=label, **style))


def _finish(ax: Any, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("step")
    integer_steps(ax)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _legend(fig: Any, handles: Sequence[Any], minimum: int = 2) -> None:
    """One legend beside the axes (never over the curves); none below `minimum` curves."""
    unique = {h.get_label(): h for h in handles if not h.get_label().startswith("_")}
    if len(unique) >= minimum:
        fig.legend(handles=list(unique.values()), loc="outside right upper", fontsize=8)


def training_curves(run: RunData) -> list[tuple[str, Series]]:
    """The training example(s)' accuracy by step: from history.json for up to four examples (the
    k-shot runs), else the batch accuracy of metrics.jsonl."""
    per_example = run.example_accuracy()
    if 1 <= len(per_example) <= 4:
        return [(f"training example {k}", v) for k, v in per_example.items()]
    if run.has("train_accuracy"):
        return [("training batch accuracy", run.series("train_accuracy"))]
    return []


def test_curves(run: RunData) -> list[tuple[str, Series, str]]:
    """(label, series, line style) of held-out accuracy: eval results (the paper's six-benchmark
    average when complete, else each benchmark) and validation, lenient solid and strict dashed."""
    curves: list[tuple[str, Series, str]] = []
    average = run.eval_series("average")
    benchmarks = run.eval_benchmarks()
    if average[0]:
        curves.append(("test: 6-benchmark average", average, "-"))
    else:
        for name, label in benchmarks[:6]:
            curves.append((f"test: {label}", run.eval_series(name), "-"))
            if len(benchmarks) == 1:
                curves.append((f"test: {label} (strict)", run.eval_series(name, "strict_accuracy"), "--"))
    if run.has("val_accuracy"):
        curves.append(("validation", run.series("val_accuracy"), "-"))
    if run.has("val_strict_accuracy"):
        curves.append(("validation (strict)", run.series("val_strict_accuracy"), "--"))
    return [c for c in curves if c[1][0]]


def _draw_saturation(run: RunData, fig: Any) -> str | None:
    train = training_curves(run)
    if not train:
        return "no training accuracy in metrics.jsonl or history.json"
    ax = fig.add_subplot()
    handles: list[Any] = []
    for i, (label, series) in enumerate(train):
        handles += _line(ax, series, label, color=f"C{i}", linewidth=2.2)
    ax.set_ylim(-0.02, 1.02)
    percent_axis(ax)
    ax.set_ylabel("training example accuracy")
    sat = run.saturation_step()
    if sat is not None:
        handles.append(ax.axvline(sat, color="0.4", linestyle=":", label=f"saturated (>= 90%) at step {sat}"))
    tests = test_curves(run)
    if tests:
        ax2 = ax.twinx()
        colors: dict[str, str] = {}  # a strict curve takes the colour of its lenient twin
        for label, series, ls in tests:
            color = colors.setdefault(label.removesuffix(" (strict)"), f"C{len(train) + len(colors)}")
            handles += _line(ax2, series, label, color=color, linestyle=ls)
        ax2.set_ylabel("test / validation accuracy (right axis)")
        lo, hi = _range([v for _, s, _ in tests for v in s[1]])
        ax2.set_ylim(lo, hi)
        percent_axis(ax2)
    else:
        ax.text(0.5, 0.5, "no validation or eval results in this run", transform=ax.transAxes, ha="center",
                color="0.4")
    ax.set_title("Post-saturation generalisation: training example vs held-out accuracy")
    ax.set_xlabel("step")
    integer_steps(ax)
    ax.grid(True, alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    return None


def _range(values: Sequence[float]) -> tuple[float, float]:
    """An axis range around the values with room for the legend, within [0, 1] where they are."""
    finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
    lo, hi = min(finite), max(finite)
    pad = max(0.05, (hi - lo) * 0.15)
    top = min(1.02, hi + pad) if hi <= 1.0 else hi + pad
    return max(-0.02, lo - pad), top


def _draw_reward(run: RunData, fig: Any) -> str | None:
    if not run.has("reward_mean") and not run.has("train_accuracy"):
        return "no reward_mean or train_accuracy in metrics.jsonl"
    ax = fig.add_subplot()
    handles: list[Any] = []
    if run.has("reward_mean"):
        handles += _line(ax, run.series("reward_mean"), "reward (mean)", smooth=True, color="C0", linewidth=2)
    if run.has("train_accuracy"):
        handles += _line(ax, run.series("train_accuracy"), "training accuracy", smooth=True, color="C1",
                         linestyle="--")
    if run.has("boxed_rate"):  # (a format-only reward raises this line whether or not the accuracy follows)
        handles += _line(ax, run.series("boxed_rate"), "boxed answers", smooth=True, color="C2", linestyle=":")
    _finish(ax, "Reward and training accuracy", "value")
    _legend(fig, handles)
    return None


def _draw_accuracy(run: RunData, fig: Any) -> str | None:
    if not run.has("val_accuracy") and not run.evals:
        return "no validation (val_file) in this run and no eval/<step>/results.json (rlvr eval --run)"
    panels = (("Lenient (final answer in any form)", "val_accuracy", "accuracy"),
              ("Strict (last \\boxed{} correct)", "val_strict_accuracy", "strict_accuracy"))
    axes = fig.subplots(1, 2, sharey=True)
    handles: list[Any] = []
    for ax, (title, val_key, eval_key) in zip(axes, panels, strict=True):
        if run.has(val_key):
            handles += _line(ax, run.series(val_key), "validation", color="black", linewidth=2)
        for i, (name, label) in enumerate(run.eval_benchmarks()):
            series = run.eval_series(name, eval_key)
            if series[0]:
                handles += _line(ax, series, label, color=f"C{i % 10}")
        if eval_key == "accuracy" and run.eval_series("average")[0]:
            handles += _line(ax, run.eval_series("average"), "average of the paper's 6", color="0.35",
                             linewidth=2.5, linestyle="--")
        if eval_key == "strict_accuracy" and run.has("val_format_rate"):
            handles += _line(ax, run.series("val_format_rate"), "validation format rate", color="0.5",
                             linestyle=":")
        ax.set_ylim(-0.02, 1.02)
        percent_axis(ax)
        _finish(ax, title, "accuracy")
    _legend(fig, handles)
    return None


def _simple(key: str, title: str, ylabel: str) -> Callable[[RunData, Any], str | None]:
    def draw(run: RunData, fig: Any) -> str | None:
        if not run.has(key):
            return f"no {key} in metrics.jsonl"
        ax = fig.add_subplot()
        handles = _line(ax, run.series(key), key, smooth=True, color="C0")
        _finish(ax, title, ylabel)
        _legend(fig, handles)
        return None

    return draw


def _draw_length(run: RunData, fig: Any) -> str | None:
    if not run.has("response_length_mean"):
        return "no response_length_mean in metrics.jsonl"
    ax = fig.add_subplot()
    handles = _line(ax, run.series("response_length_mean"), "mean length", smooth=True, color="C0")
    if run.has("response_length_max"):
        handles += _line(ax, run.series("response_length_max"), "max length", smooth=True, color="C1")
    limit = run.config.get("max_new_tokens")
    longest = max((v for v in run.series("response_length_max")[1] if math.isfinite(v)), default=0.0)
    title = "Response length and truncation"
    if isinstance(limit, int) and limit > 0:
        if longest >= limit / 2:  # far below the limit, the line would only flatten the curves
            handles.append(ax.axhline(limit, color="0.5", linestyle=":", label=f"max_new_tokens {limit}"))
        else:
            title += f" (limit {limit} tokens)"
    tops = [v for line in ax.get_lines() for v in line.get_ydata() if math.isfinite(v)]
    ax.set_ylim(0, 1.08 * max(tops, default=1.0) or 1.0)  # room above a curve that sits at the limit
    if run.has("truncation_rate"):
        ax2 = ax.twinx()
        handles += _line(ax2, run.series("truncation_rate"), "truncation rate (right)", color="C3",
                         linestyle="--", linewidth=1)
        ax2.set_ylim(-0.02, 1.02)
        percent_axis(ax2)
        ax2.set_ylabel("truncated responses")
    _finish(ax, title, "tokens")
    _legend(fig, handles)
    return None


_PHASES = ("time_generate", "time_score", "time_logprobs", "time_update")


def _draw_time(run: RunData, fig: Any) -> str | None:
    keys = {k for row in run.metrics for k in row if k.startswith("time_") and k != "time_step"}
    phases = [k for k in _PHASES if k in keys] + sorted(keys - set(_PHASES))
    rows = [r for r in run.metrics if isinstance(r.get("step"), int) and any(k in r for k in phases)]
    if not rows:
        return "no time_* phases in metrics.jsonl"
    ax = fig.add_subplot()
    steps = [r["step"] for r in rows]
    stacks = [[float(r.get(k) or 0.0) for r in rows] for k in phases]
    handles = ax.stackplot(steps, stacks, labels=[k.removeprefix("time_") for k in phases], alpha=0.85)
    _finish(ax, "Time per step by phase", "seconds")
    _legend(fig, handles[::-1])  # top band first, as they are stacked
    return None


def reflection_counts_by_step(run: RunData) -> tuple[str, list[int], dict[str, list[int]], list[int]]:
    """(source, steps, word -> total occurrences per step, responses per step) from eval results
    when they carry reflection summaries, else from the validation records."""
    steps: list[int] = []
    counts: dict[str, list[int]] = {}
    responses: list[int] = []

    def add(step: int, totals: dict[str, int], n: int) -> None:
        for word in totals:
            counts.setdefault(word, [0] * len(steps))
        steps.append(step)
        responses.append(n)
        for word, per_step in counts.items():
            per_step.append(int(totals.get(word, 0)))

    for step, results in run.evals:
        totals: dict[str, int] = {}
        n = 0
        for res in (results.get("benchmarks") or {}).values():
            refl = res.get("reflection") if isinstance(res, dict) else None
            if isinstance(refl, dict) and isinstance(refl.get("words"), dict):
                n += int(refl.get("responses", 0))
                for word, stats in refl["words"].items():
                    totals[word] = totals.get(word, 0) + int((stats or {}).get("total", 0))
        if n:
            add(step, totals, n)
    if steps:
        return "eval", steps, counts, responses
    for step, path in run.validation:
        records = read_jsonl(path)
        totals = {}
        for r in records:
            for word, c in (r.get("reflection") or {}).items():
                totals[word] = totals.get(word, 0) + int(c)
        add(step, totals, len(records))
    return "validation", steps, counts, responses


def _draw_reflection(run: RunData, fig: Any) -> str | None:
    source, steps, counts, responses = reflection_counts_by_step(run)
    if not steps:
        return "no eval results with reflection counts and no validation records"
    used = {w: c for w, c in counts.items() if any(c)}
    if not used:
        return f"no self-reflection words in any {source} response"
    ax = fig.add_subplot()
    handles = []
    for i, (word, per_step) in enumerate(used.items()):
        handles += _line(ax, (steps, [float(c) for c in per_step]), word, color=f"C{i % 10}")
    label = f"occurrences in {responses[-1]} responses" if len(set(responses)) == 1 else "occurrences"
    ax.yaxis.get_major_locator().set_params(integer=True)
    _finish(ax, f"Self-reflection words in {source} responses", label)
    _legend(fig, handles, minimum=1)  # the legend names the word
    return None


Drawer = Callable[[RunData, Any], str | None]

# (key, title, drawer, figure size) in page order.
PLOTS: tuple[tuple[str, str, Drawer, tuple[float, float]], ...] = (
    ("saturation", "Post-saturation generalisation", _draw_saturation, (9.0, 4.8)),
    ("reward", "Reward and training accuracy", _draw_reward, (8.0, 4.0)),
    ("accuracy", "Validation and benchmark accuracy", _draw_accuracy, (11.0, 4.2)),
    ("entropy", "Entropy", _simple("entropy", "Policy entropy (response tokens)", "nats per token"), (8.0, 3.6)),
    ("kl", "KL to the reference", _simple("kl", "KL to the reference model", "KL per token"), (8.0, 3.6)),
    ("length", "Response length", _draw_length, (8.0, 4.0)),
    ("time", "Time per step", _draw_time, (8.0, 3.6)),
    ("reflection", "Self-reflection words", _draw_reflection, (8.0, 3.8)),
)


def _draw(run: RunData, key: str, out_png: Path) -> str | None:
    """Draw one plot into out_png; returns a note (and writes nothing) when its data is missing."""
    _, _, drawer, size = next(p for p in PLOTS if p[0] == key)
    fig = new_figure(*size)
    note = drawer(run, fig)
    if note is None:
        out_png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, format="png")
    return note


def draw_plots(run: RunData, out_dir: Path) -> list[Plot]:
    """Every plot of the page into out_dir/<key>.png; skipped plots carry a note and leave no file."""
    require_matplotlib()
    plots = []
    for key, title, _, _ in PLOTS:
        png = out_dir / f"{key}.png"
        note = _draw(run, key, png)
        if note is not None:
            png.unlink(missing_ok=True)  # a stale image from an earlier page would contradict the note
        plots.append(Plot(key, title, None if note else png, note or ""))
    return plots


def plot_saturation(run_dir: str | Path, out_png: str | Path) -> Path:
    """The post-saturation picture of a run: training-example accuracy by step (left axis) with test
    and validation accuracy by step (right axis), the saturation step marked. Returns out_png."""
    out = Path(out_png)
    note = _draw(load_run(run_dir), "saturation", out)
    if note is not None:
        raise RlvrError(f"{run_dir}: cannot draw the saturation plot ({note})")
    return out
