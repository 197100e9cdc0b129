"""The math reward in the shapes that verl and TRL call.

- verl: `compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw) -> float`, and
  `compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None, **kw)` for its
  batch reward manager.
- TRL: `trl_reward_function(...)` builds `f(prompts, completions, **columns) -> list[float]`.

Both use the training rule: 1.0 when the last `\\boxed{}` matches the gold, else 0.0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oneshot_rlvr.reward.grade import default_grader

RewardFunction = Callable[..., list[float]]


def _gold_candidates(ground_truth: object) -> list[str]:
    """verl ground truths may be strings, numbers or lists of acceptable answers."""
    if ground_truth is None:
        return []
    if isinstance(ground_truth, (list, tuple)):
        return [c for item in ground_truth for c in _gold_candidates(item)]
    if isinstance(ground_truth, bytes):
        return [ground_truth.decode("utf-8", errors="replace")]
    return [str(ground_truth)]


def _score_many(golds: Sequence[object], responses: Sequence[str | None], require_boxed: bool) -> list[float]:
    """One verify_batch call for all (gold candidate, response) pairs; any matching candidate counts."""
    pairs = [(i, gold) for i, truth in enumerate(golds) for gold in _gold_candidates(truth)]
    verdicts = default_grader().verify_batch(
        [gold for _, gold in pairs], [responses[i] for i, _ in pairs], require_boxed=require_boxed
    )
    scores = [0.0] * len(golds)
    for (i, _), ok in zip(pairs, verdicts, strict=True):
        if ok:
            scores[i] = 1.0
    return scores


def compute_score(
    data_source: str | None,
    solution_str: str | None,
    ground_truth: object,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """verl custom reward: 1.0 when the last `\\boxed{}` of `solution_str` matches `ground_truth`."""
    return _score_many([ground_truth], [solution_str], require_boxed=True)[0]


def compute_score_batch(
    data_sources: Sequence[str | None],
    solution_strs: Sequence[str | None],
    ground_truths: Sequence[object],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """verl batch reward manager form of `compute_score`: all responses graded in one parallel call."""
    if len(solution_strs) != len(ground_truths):
        raise ValueError(f"{len(solution_strs)} solutions but {len(ground_truths)} ground truths")
    return _score_many(list(ground_truths), list(solution_strs), require_boxed=True)


def completion_text(completion: object) -> str | None:
    """Text of a TRL completion: a string, or chat messages (the last assistant message's content)."""
    if completion is None or isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return completion_text(completion.get("content"))
    if isinstance(completion, Sequence):
        if all(isinstance(m, Mapping) and "role" in m for m in completion):
            replies = [m for m in completion if m.get("role") == "assistant"] or list(completion)
            return completion_text(replies[-1]) if replies else None
        # multimodal content: [{"type": "text", "text": ...}, ...]
        parts = [p.get("text", "") for p in completion if isinstance(p, Mapping) and p.get("type") == "text"]
        return "".join(str(p) for p in parts)
    raise TypeError(f"completion must be text or chat messages, got {type(completion).__name__}")


def trl_reward_function(
    answer_column: str = "answer",
    *,
    require_boxed: bool = True,
    fallback_columns: Sequence[str] = ("solution", "ground_truth"),
) -> RewardFunction:
    """A TRL reward function reading gold answers from the dataset column `answer_column`."""

    def math_accuracy(prompts: Sequence[object], completions: Sequence[object], **columns: Any) -> list[float]:
        for name in (answer_column, *fallback_columns):
            if name in columns:
                golds = list(columns[name])
                break
        else:
            raise KeyError(f"the dataset needs a {answer_column!r} column with the gold answers")
        if len(golds) != len(completions):
            raise ValueError(f"{len(golds)} gold answers but {len(completions)} completions")
        texts = [completion_text(c) for c in completions]
        return _score_many(golds, texts, require_boxed=require_boxed)

    math_accuracy.__name__ = "math_accuracy"
    return math_accuracy


trl_math_reward = trl_reward_function()
"""The default TRL reward function: gold answers in the `answer` column, boxed answers required."""
