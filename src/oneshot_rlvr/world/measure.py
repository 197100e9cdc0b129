"""Quick measurements of a world model: greedy accuracy, the latent careful-vs-careless gap, styles.

Responses come from the project's rollout engine and are graded by the project's grader: STRICT is
the training reward's rule (the last `\\boxed{}`), LENIENT the evaluation harness's (the last
`\\boxed{}`, else "the answer is ...", else the last number). Forcing a style means appending its opener to the prompt
and letting the model continue; the response is graded with the opener included.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oneshot_rlvr.data.templates import messages_for
from oneshot_rlvr.world.corpus import CHECK_PHRASE, OPENERS, render_chat
from oneshot_rlvr.world.problems import WorldProblem


def style_of(response: str) -> str:
    """careless / careful / check (careful opener and a self-check) / other, from the response text."""
    text = response.lstrip()
    if text.startswith(OPENERS["careless"]):
        return "careless"
    if text.startswith(OPENERS["careful"]):
        return "check" if CHECK_PHRASE in text else "careful"
    return "other"


@dataclass
class Graded:
    family: str
    response: str
    strict: bool
    lenient: bool
    boxed: bool
    finished: bool


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], *, sample: bool = False,
             temperature: float = 1.0, max_new_tokens: int = 200, batch_size: int = 64,
             seed: int = 0) -> list[tuple[str, bool]]:
    """(response text, whether it ended with the stop token) for each prompt."""
    from oneshot_rlvr.rollout import SamplingParams
    from oneshot_rlvr.rollout.engine import make_engine

    sampling = SamplingParams(temperature=temperature if sample else 0.0, max_new_tokens=max_new_tokens)
    out = make_engine(model, tokenizer, batch_rows=batch_size).generate(list(prompts), 1, sampling, seed=seed)
    return [(text, reason == "eos") for text, reason in zip(out.texts, out.finish_reasons, strict=True)]


def grade_runs(problems: Sequence[WorldProblem], responses: Sequence[tuple[str, bool]],
               prefix: str = "") -> list[Graded]:
    """Grade each response (with a forced `prefix` put back in front) strictly and leniently."""
    from oneshot_rlvr.reward import extract_answer, verify_batch

    texts = [prefix + text for text, _ in responses]
    golds = [p.answer for p in problems]
    strict = verify_batch(golds, texts, require_boxed=True)
    lenient = verify_batch(golds, texts)
    return [Graded(p.family, text, s, ok, extract_answer(text, mode="boxed") is not None, done)
            for p, text, s, ok, (_, done) in zip(problems, texts, strict, lenient, responses, strict=True)]


def summarize(graded: Sequence[Graded]) -> dict[str, Any]:
    """Overall and per-family strict, lenient and boxed rates, and style frequencies."""
    def rates(rows: Sequence[Graded]) -> dict[str, float]:
        n = max(len(rows), 1)
        return {"strict": sum(r.strict for r in rows) / n, "lenient": sum(r.lenient for r in rows) / n,
                "boxed": sum(r.boxed for r in rows) / n, "finished": sum(r.finished for r in rows) / n}

    by_family: dict[str, list[Graded]] = defaultdict(list)
    for row in graded:
        by_family[row.family].append(row)
    styles = Counter(style_of(r.response) for r in graded)
    return {**rates(graded), "n": len(graded),
            "styles": {k: v / max(len(graded), 1) for k, v in sorted(styles.items())},
            "per_family": {f: rates(rows) for f, rows in sorted(by_family.items())}}


def measure(model: Any, tokenizer: Any, problems: Sequence[WorldProblem], *,
            template: str = "qwen25-math-cot", samples: int = 1, seed: int = 0,
            batch_size: int = 64) -> dict[str, Any]:
    """Greedy, forced-careless, forced-careful and sampled (T = 1) results on `problems`."""
    prompts = [render_chat(messages_for(p.question, template)) for p in problems]
    result: dict[str, Any] = {"template": template, "n_problems": len(problems)}
    result["greedy"] = summarize(grade_runs(problems, generate(model, tokenizer, prompts, batch_size=batch_size)))
    for style, opener in (("careless", OPENERS["careless"]), ("careful", OPENERS["careful"])):
        forced = generate(model, tokenizer, [p + opener for p in prompts], batch_size=batch_size)
        result[f"forced_{style}"] = summarize(grade_runs(problems, forced, prefix=opener))
    repeated = [p for p in problems for _ in range(samples)]
    sampled = generate(model, tokenizer, [q for q in prompts for _ in range(samples)], sample=True,
                       batch_size=batch_size, seed=seed)
    result["sampled_t1"] = summarize(grade_runs(repeated, sampled))
    return result
