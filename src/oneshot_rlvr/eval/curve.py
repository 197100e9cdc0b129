"""A training run's accuracy-by-step curve: evaluate RUN/checkpoints/step_N/ into RUN/eval/N/.

Full checkpoints load as they are; LoRA checkpoints (an adapter only) are merged into the run's base
model (`model` in RUN/config.yaml). Each step's results.json holds every benchmark evaluated there, each
with the protocol that produced it (`run_protocol`): a benchmark already evaluated under the same protocol
is read back instead of rerun (so the command can follow a run that is still training), one under another
protocol is evaluated again, and new benchmarks join the old ones. Old results stay on disk until the new
ones are written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from oneshot_rlvr import runfolder
from oneshot_rlvr.errors import RlvrError, install_hint
from oneshot_rlvr.eval.benchmarks import PAPER_BENCHMARKS, Benchmark
from oneshot_rlvr.eval.metrics import benchmark_average
from oneshot_rlvr.eval.run import EvalOptions, evaluate_benchmarks, load_benchmarks, run_protocol, write_outputs
from oneshot_rlvr.progress import bar, nested_bars_off
from oneshot_rlvr.runfolder import RunFolder
from oneshot_rlvr.tracking import Tracker, run_tracker

log = logging.getLogger(__name__)

_ADAPTER = "adapter_config.json"


def checkpoint_steps(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every RUN/checkpoints/step_N/ holding a model (config.json) or a LoRA
    adapter (adapter_config.json), by step."""
    found = []
    for folder in RunFolder(Path(run_dir)).checkpoints.glob(f"{runfolder.STEP_PREFIX}*"):
        suffix = folder.name[len(runfolder.STEP_PREFIX):]
        if suffix.isdigit() and ((folder / "config.json").exists() or (folder / _ADAPTER).exists()):
            found.append((int(suffix), folder))
    return sorted(found)



def _run_model(run_dir: Path) -> str | None:
    """The `model` of the run's config.yaml (the base the run started from), if any."""
    config = RunFolder(run_dir).config
    if not config.exists():
        return None
    import yaml

    model = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("model")
    return model if isinstance(model, str) and model else None


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists()


def _run_tokenizer_source(run_dir: Path, folder: Path, tokenizer: str | None) -> str:
    """The checkpoint's own tokenizer, else `tokenizer`, else the run config's `model`."""
    if _has_tokenizer(folder):
        return str(folder)
    if tokenizer:
        return tokenizer
    model = _run_model(run_dir)
    if model:
        return model
    raise RlvrError(f"{folder}: no tokenizer files and no model in {run_dir / 'config.yaml'}; pass --tokenizer")


def _load_checkpoint(run_dir: Path, folder: Path, load_options: Any, device: Any) -> Any:
    """A full checkpoint as is; a LoRA checkpoint merged into its base model (the run's `model`)."""
    from oneshot_rlvr.models.load import LoadOptions, load_model

    opts = replace(load_options or LoadOptions(), lora_r=0)
    if (folder / "config.json").exists():
        return load_model(str(folder), opts, device)
    base = _run_model(run_dir) or json.loads((folder / _ADAPTER).read_text()).get("base_model_name_or_path")
    if not base:
        raise RlvrError(f"{folder}: a LoRA adapter without a base model (no model in {run_dir / 'config.yaml'})")
    try:
        from peft import PeftModel
    except ImportError:
        raise RlvrError(f"evaluating LoRA checkpoints needs peft: {install_hint('lora')}") from None
    return PeftModel.from_pretrained(load_model(base, opts, device), str(folder)).merge_and_unload()


def evaluate_run(
    run_dir: str | Path,
    benchmarks: Sequence[Benchmark],
    options: EvalOptions | None = None,
    *,
    every: int | None = None,
    device: Any = "cpu",
    load_options: Any = None,
    batch_rows: int = 256,
    tokenizer: str | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Evaluate a training run's checkpoints into RUN/eval/<step>/ (the accuracy-by-step curve).

    Steps that are multiples of `every` (all steps when None) are evaluated; a step whose
    results.json already covers the requested benchmarks is skipped and read back. Returns
    (step, results) for every selected step, by step.
    """
    from oneshot_rlvr.models.load import load_tokenizer
    from oneshot_rlvr.rollout.engine import make_engine

    run = Path(run_dir)
    if not run.is_dir():
        raise RlvrError(f"{run}: no such run folder")
    steps = [(s, f) for s, f in checkpoint_steps(run) if not every or s % every == 0]
    if not steps:
        raise RlvrError(f"{run}/checkpoints: no step_N/ checkpoint folders" + (f" at multiples of {every}"
                                                                               if every else ""))
    opts = options or EvalOptions()
    problems = load_benchmarks(benchmarks, opts)
    tracker = _run_tracker(run)
    progress = bar(len(steps), "rlvr eval", "checkpoint")
    curve = []
    for step, folder in steps:
        out = RunFolder(run).eval_dir(step)
        progress.set_postfix(step=step)
        previous, old_records = _read_step(out)
        todo = [b for b in benchmarks if _recorded_protocol(previous, b.name) != run_protocol(b, opts)]
        if not todo:
            log.info("step %d: %s already evaluated with this protocol (%s); skipping", step,
                     ", ".join(b.name for b in benchmarks), out / runfolder.RESULTS)
            curve.append((step, previous))
            progress.update(1)
            continue
        for b in todo:
            if _recorded_protocol(previous, b.name) is not None:
                log.info("step %d: %s was evaluated with another protocol (%s); evaluating it again", step, b.name,
                         _recorded_protocol(previous, b.name))
        log.info("step %d: evaluating %s on %s", step, folder, ", ".join(b.name for b in todo))
        with nested_bars_off():
            tok = load_tokenizer(_run_tokenizer_source(run, folder, tokenizer))
            model = _load_checkpoint(run, folder, load_options, device)
        engine = make_engine(model, tok, batch_rows=batch_rows, stop=opts.stop)
        results, records = evaluate_benchmarks(engine, tok, todo, opts, model=str(folder), step=step,
                                               problems=problems)
        merged, merged_records = _merge(previous, old_records, results, records)
        write_outputs(out, merged, merged_records)
        curve.append((step, merged))
        tracker.log(eval_metrics(merged), step=step)
        progress.update(1)
        del engine, model
    progress.close()
    tracker.close()
    return curve


def eval_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The numbers of one step's results.json that go to the run's trackers: eval/<benchmark>/<metric>."""
    wanted = ("accuracy", "strict_accuracy", "harness_accuracy", "format_rate", "mean_response_tokens")
    out = {f"eval/{name}/{key}": float(value) for name, bench in results.get("benchmarks", {}).items()
           for key, value in bench.items()
           if (key in wanted or key.startswith("pass@")) and isinstance(value, (int, float))}
    # The paper's six-benchmark mean, only when all six were evaluated (a partial mean is not that number).
    for key, field in (("average", "accuracy"), ("harness_average", "harness_accuracy")):
        average = results.get(key)
        if isinstance(average, dict) and average.get("complete") and isinstance(average.get(field), (int, float)):
            out[f"eval/{key}"] = float(average[field])
    return out


def _run_tracker(run_dir: Path) -> Tracker:
    """The trackers named by the run's own config.yaml, continuing the training's runs (W&B, MLflow)."""
    config = RunFolder(run_dir).config
    if not config.exists():
        return Tracker({})
    import yaml

    settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    if not isinstance(settings, dict) or not settings.get("report_to"):
        return Tracker({})
    return run_tracker(settings, run_dir, resume=True, log_config=False)


def _read_step(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A step's results.json and records.jsonl, or empty ones when the step has none (or only half)."""
    results, records = out / runfolder.RESULTS, out / runfolder.RECORDS
    if not (results.exists() and records.exists()):
        return {}, []
    try:
        previous = json.loads(results.read_text(encoding="utf-8"))
        rows = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise RlvrError(f"{out}: cannot read the earlier results ({err}); move them away to evaluate again") from None
    return previous, rows


def _recorded_protocol(results: dict[str, Any], name: str) -> Any:
    return results.get("benchmarks", {}).get(name, {}).get("protocol")


def _merge(previous: dict[str, Any], old_records: list[dict[str, Any]], new: dict[str, Any],
           new_records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The step's results with the new benchmarks' entries in place of (or beside) the old ones."""
    replaced = set(new["benchmarks"])
    benchmarks = {k: v for k, v in previous.get("benchmarks", {}).items() if k not in replaced}
    benchmarks.update(new["benchmarks"])
    records = [r for r in old_records if r.get("benchmark") not in replaced] + new_records
    merged = {**new, "benchmarks": benchmarks, "average": benchmark_average(benchmarks, PAPER_BENCHMARKS)}
    if any("harness_accuracy" in b for b in benchmarks.values()):
        merged["harness_average"] = benchmark_average(benchmarks, PAPER_BENCHMARKS, key="harness_accuracy")
    return merged, records
