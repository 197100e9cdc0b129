"""Periodic validation during training: greedy answers on a held-out problem file, graded like
evaluation (lenient and strict), with the per-response records kept in RUN/validation/.

Validation also runs once before the first step (the official run's `val_before_train=True`), logged as the
step-0 row of metrics.jsonl; responses stop where the run's rollouts stop (the `stop` setting), as the
official run's validation sampled through its rollout engine.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.data import Problem, load_problems
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.runfolder import RunFolder, write_atomic
from oneshot_rlvr.train.metrics import MetricsLog

log = logging.getLogger("oneshot_rlvr.train")


@dataclass
class Validator:
    problems: list[Problem]
    tokenizer: Any
    template: str
    sampling: SamplingParams
    settings: TrainConfig
    """The run's settings: validation samples through the engine its rollouts use (`make_engine`)."""
    out_dir: Path | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig, tokenizer: Any, out_dir: Path | None = None) -> Validator:
        problems = load_problems(cfg.val_file, question_field=cfg.question_field or None,
                                 answer_field=cfg.answer_field or None, limit=cfg.val_limit or None)
        sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.val_max_new_tokens or cfg.max_new_tokens)
        return cls(problems, tokenizer, cfg.val_template, sampling, cfg, out_dir)

    def before_training(self, model: Any, metrics_log: MetricsLog) -> None:
        """Validate the initial model into the step-0 row, unless the log already has that row (a resumed run
        that stopped before its first checkpoint keeps the row it wrote rather than validating twice)."""
        if 0 in _logged_steps(metrics_log.path):
            return
        row = {"step": 0, **self.run(model, 0)}
        metrics_log.append(row)
        log.info("step 0 (before training): validation accuracy %.3f", row.get("val_accuracy", float("nan")))

    @torch.no_grad()
    def run(self, model: Any, step: int) -> dict[str, float]:
        from oneshot_rlvr.eval.run import evaluate_problems
        from oneshot_rlvr.rollout.engine import make_engine

        engine = make_engine(model, self.tokenizer, self.settings)
        metrics, records = evaluate_problems(engine, self.problems, template=self.template,
                                             tokenizer=self.tokenizer, sampling=self.sampling, n=1,
                                             benchmark="validation")
        if self.out_dir is not None:
            path = RunFolder(self.out_dir).validation_file(step)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
        return {f"val_{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def _logged_steps(path: Path) -> set[int]:
    if not path.exists():
        return set()
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {r["step"] for r in rows if isinstance(r.get("step"), int)}
