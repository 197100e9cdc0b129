"""Evaluate a served model: the usual benchmarks, protocols, graders and outputs through `EndpointEngine`.

With a tokenizer (the served model's), prompts are rendered here exactly as for the in-process engine and
sent to /v1/completions; without one, the template's messages go to /v1/chat/completions and the server's
chat template renders them. Every record and results.json name the endpoint and the served model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oneshot_rlvr.eval.benchmarks import Benchmark
from oneshot_rlvr.eval.run import EvalOptions, evaluate_benchmarks, load_benchmarks
from oneshot_rlvr.rollout.endpoint import ChatMessages, EndpointEngine, EndpointOptions

log = logging.getLogger(__name__)


def evaluate_endpoint(
    endpoint: EndpointOptions,
    benchmarks: Sequence[Benchmark],
    options: EvalOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    tokenizer: str | None = None,
    step: int | None = None,
) -> dict[str, Any]:
    """Results of `benchmarks` on the model served at `endpoint` (written to out_dir when given)."""
    problems = load_benchmarks(benchmarks, options)  # a missing file fails before any request
    engine = EndpointEngine(endpoint)
    if tokenizer:
        from oneshot_rlvr.models.load import load_tokenizer

        tok: Any = load_tokenizer(tokenizer)
    else:
        tok = ChatMessages()
    served = engine.served_model
    log.info("evaluating %s at %s (%s)", served, engine.base,
             "prompts rendered here" if tokenizer else "the server's chat template")
    source = {"endpoint": engine.base, "served_model": served}
    results, _ = evaluate_benchmarks(engine, tok, benchmarks, options, out_dir=out_dir, model=served, step=step,
                                     problems=problems, source=source)
    return results
