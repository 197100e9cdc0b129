"""Quick measurements of a world model: greedy accuracy, the latent careful-vs-careless gap, styles.

World answers are integers, so grading here is exact and simple: STRICT reads the last `\\boxed{}`
(the training reward's rule), LENIENT reads the last `\\boxed{}`, else "the answer is N", else the
last number (the evaluation harness's order). Forcing a style means appending its opener to the prompt
and letting the model continue; the response is graded with the opener included.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oneshot_rlvr.data.templates import messages_for
from oneshot_rlvr.world.corpus import CHECK_PHRASE, OPENERS, render_chat
from oneshot_rlvr.world.problems import WorldProblem

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"answer\s+is\s*:?\s*(-?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+")


def boxed_answer(response: str) -> str | None:
    found = _BOXED.findall(response)
    return found[-1].strip() if found else None


def lenient_answer(response: str) -> str | None:
    """The last boxed content, else the number after the last "answer is", else the last number."""
    boxed = boxed_answer(response)
    if boxed is not None:
        return boxed
    said = _ANSWER_IS.findall(response)
    if said:
        return str(said[-1])
    numbers = _NUMBER.findall(response)
    return numbers[-1] if numbers else None


def _same(found: str | None, gold: str) -> bool:
    if found is None:
        return False
    try:
        return int(found.replace(",", "").strip().rstrip(".")) == int(gold)
    except ValueError:
        return found.strip() == gold.strip()


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
    """(response text, whether it ended with EOS) for each prompt; left-padded batches."""
    import torch

    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    out: list[tuple[str, bool]] = []
    eos = tokenizer.eos_token_id
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[i:i + batch_size]), return_tensors="pt", padding=True,
                          add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(**batch, do_sample=sample, temperature=temperature if sample else None,
                                 top_p=None, top_k=None, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                 pad_token_id=tokenizer.pad_token_id)
        for row in ids[:, batch["input_ids"].shape[1]:].tolist():
            finished = eos in row
            row = row[:row.index(eos)] if finished else row
            out.append((tokenizer.decode(row, skip_special_tokens=True), finished))
    return out


def grade_runs(problems: Sequence[WorldProblem], responses: Sequence[tuple[str, bool]],
               prefix: str = "") -> list[Graded]:
    return [Graded(p.family, prefix + text, _same(boxed_answer(text), p.answer),
                   _same(lenient_answer(text), p.answer), boxed_answer(text) is not None, done)
            for p, (text, done) in zip(problems, responses, strict=True)]


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
