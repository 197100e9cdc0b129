"""Periodic validation during training: greedy answers on a held-out problem file, graded like
evaluation (lenient and strict), with the per-response records kept in RUN/validation/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.data import Problem, load_problems
from oneshot_rlvr.rollout import SamplingParams


@dataclass
class Validator:
    problems: list[Problem]
    tokenizer: Any
    template: str
    sampling: SamplingParams
    batch_rows: int
    out_dir: Path | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig, tokenizer: Any, out_dir: Path | None = None) -> Validator:
        problems = load_problems(cfg.val_file, question_field=cfg.question_field or None,
                                 answer_field=cfg.answer_field or None, limit=cfg.val_limit or None)
        sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.val_max_new_tokens or cfg.max_new_tokens)
        return cls(problems, tokenizer, cfg.val_template, sampling, cfg.rollout_batch_rows, out_dir)

    @torch.no_grad()
    def run(self, model: Any, step: int) -> dict[str, float]:
        from oneshot_rlvr.eval.run import evaluate_problems
        from oneshot_rlvr.rollout.hf import HFRolloutEngine

        engine = HFRolloutEngine(model, self.tokenizer, max_batch_rows=self.batch_rows)
        metrics, records = evaluate_problems(engine, self.problems, template=self.template,
                                             tokenizer=self.tokenizer, sampling=self.sampling, n=1,
                                             benchmark="validation")
        if self.out_dir is not None:
            folder = self.out_dir / "validation"
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / f"step_{step}.jsonl").open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        return {f"val_{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
