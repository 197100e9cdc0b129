"""The training reward contract: the `reward` setting's rewards, the research controls, and module:function.

A reward scores one step's responses, prompt-major (row b * n + g is sample g of prompt b), and may also say
which responses are right against the gold answer (so the trainer need not grade twice) and add metrics.
Whatever the reward, the trainer logs `train_accuracy` against the gold, so a control run shows what the model
really learnt.

- `math`: 1 when the last `\\boxed{}` equals the gold (the paper's reward).
- `random`: Bernoulli(`random_reward_p`), drawn per response from (seed, step, row): the same rows get the same
  draws however the batch is split over processes (Spurious Rewards, arXiv 2506.10947).
- `format`: 1 when the response has a complete, non-empty `\\boxed{}`, whatever is in it.
- `incorrect`: graded like `math` against a wrong label: the problem's `incorrect_answer` field when its
  file has one, else derived from the gold: gold + 1 for a number. (Spurious Rewards took the wrong
  labels from a model's wrong majority-vote answers; a derived label needs no sampling pass.)
- `majority`: TTRL (arXiv 2504.16084): each prompt's label is the most common boxed answer among its n samples,
  answers counted together when they grade as equal; ties go to the answer that appears first; a group
  without any boxed answer has no label and all its rewards are 0. Logs `pseudo_label_acc`, the share of
  groups whose label grades equal to the gold (a group without a label counts as wrong).
- `neg_entropy`: EM-RL (arXiv 2505.15134): minus the mean token entropy of the response (token level), or its
  mean sampled-token log-prob, a one-sample estimate of minus the per-token sequence entropy (sequence level).
- `self_certainty`: Intuitor (arXiv 2505.19590): the mean over the response of KL(uniform || p).
- `module:function`: any importable `f(problems, responses) -> list[float]`.

The last two read per-token statistics of the sampling policy from the trainer's scoring pass over the
sampled responses (`TokenStats`); they never run the model themselves.
"""

from __future__ import annotations

import importlib
import math
import random
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import torch

from oneshot_rlvr.data import Problem
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.reward.extract import last_boxed

RewardFn = Callable[[list[Problem], list[str]], list[float]]
BUILTIN = ("math", "random", "format", "incorrect", "majority", "neg_entropy", "self_certainty")
ENTROPY_LEVELS = ("token", "sequence")


@dataclass
class TokenStats:
    """Per-token statistics of the sampled responses under the policy that sampled them, each (N, L) and
    aligned with the rows' input ids; `mask` (N, L) marks the response tokens."""

    logp: torch.Tensor
    entropy: torch.Tensor
    certainty: torch.Tensor
    mask: torch.Tensor


@dataclass
class RewardInputs:
    """One step's responses to score."""

    problems: list[Problem]  # one per response
    texts: list[str]
    n: int  # samples per prompt (the group size)
    seed: int = 0
    step: int = 0
    first_row: int = 0  # index of texts[0] in the whole step's batch (over all processes)
    stats: TokenStats | None = None


@dataclass
class RewardResult:
    rewards: list[float]
    correct: list[bool] | None = None  # against the gold, when the reward already graded that
    metrics: dict[str, float] = field(default_factory=dict)  # means over this process's groups or rows


@dataclass
class Reward:
    """A resolved `reward` setting: `score` and whether it needs the policy's token statistics."""

    name: str
    score: Callable[[RewardInputs], RewardResult]
    needs_token_stats: bool = False


def gold_correct(problems: Sequence[Problem], texts: Sequence[str]) -> list[bool]:
    """The paper's rule against the gold: the last \\boxed{} equals the answer."""
    from oneshot_rlvr.reward import verify_batch

    return verify_batch([p.answer for p in problems], list(texts), require_boxed=True)


def math_rewards(problems: list[Problem], texts: list[str]) -> list[float]:
    """The paper's reward: 1 when the last \\boxed{} equals the gold answer, else 0."""
    return [1.0 if ok else 0.0 for ok in gold_correct(problems, texts)]


def _math(inputs: RewardInputs) -> RewardResult:
    correct = gold_correct(inputs.problems, inputs.texts)
    return RewardResult([1.0 if ok else 0.0 for ok in correct], correct)


def random_draw(seed: int, step: int, row: int) -> float:
    """The uniform draw in [0, 1) of one response: a function of (seed, step, row) alone."""
    return random.Random((seed * 1_000_003 + step) * 1_000_033 + row).random()


def _random(p: float) -> Callable[[RewardInputs], RewardResult]:
    def score(inputs: RewardInputs) -> RewardResult:
        rows = range(inputs.first_row, inputs.first_row + len(inputs.texts))
        return RewardResult([1.0 if random_draw(inputs.seed, inputs.step, r) < p else 0.0 for r in rows])
    return score


def format_reward(text: str) -> float:
    """1.0 when the response has a complete, non-empty \\boxed{} (whatever it holds), else 0.0."""
    return 1.0 if last_boxed(text) is not None else 0.0


def _format(inputs: RewardInputs) -> RewardResult:
    return RewardResult([format_reward(t) for t in inputs.texts])


def incorrect_label(problem: Problem) -> str:
    """The wrong label of `problem`: its `incorrect_answer` field, else gold + 1 when the gold is a number."""
    given = problem.meta.get("incorrect_answer") if problem.meta else None
    if given is not None and str(given).strip():
        return str(given).strip()
    text = problem.answer.strip().replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RlvrError(f"training problem {problem.id}: reward=incorrect derives a wrong label only from a "
                        f"numeric gold (got {problem.answer!r}); give the row an incorrect_answer field") from None
    if not value.is_finite():
        raise RlvrError(f"training problem {problem.id}: gold {problem.answer!r} is not a finite number")
    return format(value + 1, "f")


def _incorrect(inputs: RewardInputs) -> RewardResult:
    from oneshot_rlvr.reward import verify_batch

    labels = [incorrect_label(p) for p in inputs.problems]
    hits = verify_batch(labels, inputs.texts, require_boxed=True)
    return RewardResult([1.0 if ok else 0.0 for ok in hits])


def majority_groups(answers: list[str | None]) -> list[int]:
    """Cluster one group's answers: the index (into `answers`) of each answer's cluster representative, -1 for
    no answer. Answers that are the same string, or that grade as equal, share a cluster."""
    from oneshot_rlvr.reward import verify_batch

    distinct = list(dict.fromkeys(a for a in answers if a is not None))
    pairs = [(i, j) for i in range(len(distinct)) for j in range(i + 1, len(distinct))]
    equal = verify_batch([distinct[i] for i, _ in pairs], [f"\\boxed{{{distinct[j]}}}" for _, j in pairs],
                         require_boxed=True) if pairs else []
    parent = list(range(len(distinct)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for (i, j), same in zip(pairs, equal, strict=True):
        if same:
            a, b = root(i), root(j)
            parent[max(a, b)] = min(a, b)  # the earlier answer stays the representative
    first_row = {a: answers.index(a) for a in distinct}
    rep = {a: first_row[distinct[root(k)]] for k, a in enumerate(distinct)}
    return [rep[a] if a is not None else -1 for a in answers]


def majority_label(answers: list[str | None]) -> tuple[str | None, list[bool]]:
    """TTRL's pseudo-label of one group: (the label, which answers agree with it); (None, all False) when no
    sample has an answer. Ties go to the cluster whose first answer comes first."""
    clusters = majority_groups(answers)
    counts: dict[int, int] = {}
    for c in clusters:
        if c >= 0:
            counts[c] = counts.get(c, 0) + 1
    if not counts:
        return None, [False] * len(answers)
    best = max(counts, key=lambda c: (counts[c], -c))
    return answers[best], [c == best for c in clusters]


def _majority(inputs: RewardInputs) -> RewardResult:
    from oneshot_rlvr.reward import verify_batch

    answers = [last_boxed(t) for t in inputs.texts]
    rewards: list[float] = []
    labels: list[str | None] = []
    golds: list[str] = []
    for start in range(0, len(answers), inputs.n):
        label, agree = majority_label(answers[start : start + inputs.n])
        rewards += [1.0 if a else 0.0 for a in agree]
        labels.append(label)
        golds.append(inputs.problems[start].answer)
    labelled = [(g, lab) for g, lab in zip(golds, labels, strict=True) if lab is not None]
    right = verify_batch([g for g, _ in labelled], [f"\\boxed{{{lab}}}" for _, lab in labelled],
                         require_boxed=True) if labelled else []
    return RewardResult(rewards, metrics={"pseudo_label_acc": sum(right) / max(len(labels), 1)})


def row_means(values: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Mean of each row's masked values, (N, L) -> N floats; 0 for a row without tokens."""
    valid = mask.bool()
    sums = torch.where(valid, values.float(), torch.zeros_like(values, dtype=torch.float32)).sum(dim=-1)
    return (sums / valid.sum(dim=-1).clamp(min=1)).tolist()


def _stats(inputs: RewardInputs, name: str) -> TokenStats:
    if inputs.stats is None:
        raise RlvrError(f"reward={name} needs the policy's token statistics; the trainer passes them")
    return inputs.stats


def _neg_entropy(level: str) -> Callable[[RewardInputs], RewardResult]:
    def score(inputs: RewardInputs) -> RewardResult:
        stats = _stats(inputs, "neg_entropy")
        if level == "token":
            return RewardResult([-h for h in row_means(stats.entropy, stats.mask)])
        return RewardResult(row_means(stats.logp, stats.mask))
    return score


def _self_certainty(inputs: RewardInputs) -> RewardResult:
    stats = _stats(inputs, "self_certainty")
    return RewardResult(row_means(stats.certainty, stats.mask))


def _custom(fn: RewardFn) -> Callable[[RewardInputs], RewardResult]:
    def score(inputs: RewardInputs) -> RewardResult:
        return RewardResult(fn(inputs.problems, inputs.texts))  # as returned: `check_scores` holds it to the contract
    return score


def check_scores(scores: Any, name: str, problems: Sequence[Problem], n: int, step: int) -> list[float]:
    """A reward's scores as floats, held to the contract: one finite number per response (row i is sample
    i % n of problems[i]).

    A reward that returns too few scores, a string, NaN or inf would otherwise become a silent zero, a shape error
    deep in the update, or a NaN loss several steps later; this stops the run at the step it happened, in one line
    naming the reward and the response (its problem and sample) that broke the contract.
    """
    where = f"step {step}: reward {name}"
    try:
        count = len(scores)
    except TypeError:
        raise RlvrError(f"{where} returned a {type(scores).__name__}, not one number per response") from None
    if count != len(problems):
        raise RlvrError(f"{where} returned {count} scores for {len(problems)} responses")
    values: list[float] = []
    for i, score in enumerate(scores):
        try:  # (a string is not a score, even one float() would read)
            value = math.nan if isinstance(score, (str, bytes)) else float(score)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise RlvrError(f"{where} gave {reprlib.repr(score)} for response {i} (problem {problems[i].id!r}, sample "
                            f"{i % n + 1} of {n}); every score must be a finite number")
        values.append(value)
    return values


def import_reward(spec: str) -> RewardFn:
    """The function a `module:function` reward names."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise RlvrError(f"setting reward={spec!r}: use {', '.join(BUILTIN)} or module:function")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError, TypeError) as err:  # (Value, Type: an empty or relative name)
        raise RlvrError(f"setting reward={spec!r}: cannot import it ({err})") from None
    if not callable(fn):
        raise RlvrError(f"setting reward={spec!r}: {attr} is not callable (type {type(fn).__name__})")
    return fn  # type: ignore[no-any-return]


def resolve_reward(spec: str, *, random_p: float = 0.5, entropy_level: str = "token",
                   fn: RewardFn | None = None) -> Reward:
    """The reward the `reward` setting names (`fn`, when given, replaces it: tests and benchmarks)."""
    if fn is not None:
        return Reward("custom", _custom(fn))
    if spec == "math":
        return Reward(spec, _math)
    if spec == "random":
        if not 0 <= random_p <= 1:
            raise RlvrError(f"setting random_reward_p={random_p}: must be in [0, 1]")
        return Reward(spec, _random(random_p))
    if spec == "format":
        return Reward(spec, _format)
    if spec == "incorrect":
        return Reward(spec, _incorrect)
    if spec == "majority":
        return Reward(spec, _majority)
    if spec in ("neg_entropy", "self_certainty"):
        if entropy_level not in ENTROPY_LEVELS:
            raise RlvrError(f"setting entropy_reward_level={entropy_level!r}: choose from {', '.join(ENTROPY_LEVELS)}")
        score = _neg_entropy(entropy_level) if spec == "neg_entropy" else _self_certainty
        return Reward(spec, score, needs_token_stats=True)
    return Reward(spec, _custom(import_reward(spec)))
