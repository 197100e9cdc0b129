"""Multiple-choice benchmarks (AI2 ARC): rows to problems, and a letter-answer grader.

Two row layouts are read: the AI2 ARC JSONL release (`question.stem`, `question.choices[{label, text}]`,
`answerKey`) and the Hugging Face `allenai/ai2_arc` rows (`question`, `choices{label[], text[]}`,
`answerKey`). Some ARC rows label their choices 1-4 instead of A-D; those are relabelled A-D (and the
key with them) so that prompts, answers and the grader always speak letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.analysis import last_boxed

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the letter of the correct choice."


def _choices_of(row: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]] | None:
    """(stem, [(label, text), ...]) from either ARC layout, or None when the row has neither."""
    question = row.get("question")
    if isinstance(question, Mapping):  # AI2 JSONL release
        stem, raw = question.get("stem"), question.get("choices")
        if isinstance(raw, Sequence) and all(isinstance(c, Mapping) for c in raw):
            pairs = [(str(c.get("label", "")), str(c.get("text", ""))) for c in raw]
            return (stem if isinstance(stem, str) else "", pairs)
        return None
    raw = row.get("choices")
    if isinstance(question, str) and isinstance(raw, Mapping):  # Hugging Face layout
        labels, texts = raw.get("label"), raw.get("text")
        if isinstance(labels, Sequence) and isinstance(texts, Sequence) and len(labels) == len(texts):
            return question, [(str(a), str(b)) for a, b in zip(labels, texts, strict=True)]
    return None


def render_choices(stem: str, choices: Sequence[tuple[str, str]]) -> str:
    """The question text the model sees: the stem, one `(X) text` line per choice, the instruction."""
    lines = [stem.strip(), ""]
    lines += [f"({label}) {text.strip()}" for label, text in choices]
    lines += ["", INSTRUCTION]
    return "\n".join(lines)


def choice_problems(rows: Iterable[Mapping[str, Any]], *, where: str, source: str) -> list[Problem]:
    """ARC rows -> problems whose prompt lists the choices and whose answer is the key letter."""
    problems = []
    for i, row in enumerate(rows, start=1):
        parsed = _choices_of(row) if isinstance(row, Mapping) else None
        if parsed is None or not parsed[0].strip() or not parsed[1]:
            raise RlvrError(f"{where}: row {i} is not an ARC multiple-choice row (question.stem / choices)")
        stem, choices = parsed
        if len(choices) > len(LETTERS):
            raise RlvrError(f"{where}: row {i} has {len(choices)} choices (at most {len(LETTERS)})")
        key = str(row.get("answerKey", "")).strip()
        labels = [label for label, _ in choices]
        if key not in labels:
            raise RlvrError(f"{where}: row {i} answerKey {key!r} is not one of the labels {labels}")
        relabel = dict(zip(labels, LETTERS, strict=False))  # 1-4 -> A-D; A-D stay A-D
        lettered = [(relabel[label], text) for label, text in choices]
        pid = row.get("id", i - 1)
        problems.append(Problem(
            id=str(pid), prompt=render_choices(stem, lettered), answer=relabel[key], source=source,
            meta={"stem": stem, "labels": [x for x, _ in lettered], "choices": [t for _, t in lettered]},
        ))
    if not problems:
        raise RlvrError(f"{where}: no problems found")
    return problems


_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*\(?\s*([A-J])\s*\)?(?![A-Za-z0-9])", re.IGNORECASE)
_PAREN = re.compile(r"\(([A-J])\)")
_BARE = re.compile(r"(?<![A-Za-z0-9\\_{])([A-J])(?![A-Za-z0-9_}])")


def _letter_in_box(content: str, labels: str, choices: Sequence[str]) -> str | None:
    inner = _WRAPPERS.sub(r"\1", content).strip().strip("$").strip()
    # A lone letter in either case, or "(B) text" / "B. text" / "B) text" with a capital letter.
    m = (re.fullmatch(r"\(?([A-Ja-j])\)?\.?", inner)
         or re.fullmatch(r"(?:\(([A-J])\)|([A-J])[.):])\s.*", inner, flags=re.DOTALL))
    letter = next((g for g in m.groups() if g), "").upper() if m else ""
    if letter and letter in labels:
        return letter
    folded = " ".join(inner.lower().split()).rstrip(".")
    for label, text in zip(labels, choices, strict=False):
        if folded and folded == " ".join(text.lower().split()).rstrip("."):
            return label
    return None


def extract_choice(
    response: str, labels: str = "ABCD", choices: Sequence[str] = (), *, mode: str = "lenient"
) -> str | None:
    """The chosen letter, or None.

    strict ("boxed"): only the last \\boxed{} counts: a letter (`B`, `(B)`, `\\text{B}`, `B. text`) or the
    exact text of a choice. lenient adds, in order: the last "the answer is (B)" / "Answer: B", the last
    parenthesised letter "(B)", and the last standalone capital letter among the labels, skipping the
    article "A" before a lowercase word ("A car ...").
    """
    boxed = last_boxed(response)
    if boxed is not None:
        found = _letter_in_box(boxed, labels, choices)
        if found or mode == "boxed":
            return found
    elif mode == "boxed":
        return None
    for pattern in (_ANSWER_IS, _PAREN):
        hits = [m.group(1).upper() for m in pattern.finditer(response) if m.group(1).upper() in labels]
        if hits:
            return hits[-1]
    bare = [m for m in _BARE.finditer(response) if m.group(1) in labels]
    bare = [m for m in bare if not (m.group(1) == "A" and re.match(r"A\s+[a-z]", response[m.start():]))]
    return bare[-1].group(1) if bare else None


def grade_choice(problem: Problem, response: str, *, require_boxed: bool = False) -> bool:
    labels = "".join(problem.meta.get("labels", LETTERS[:4]))
    picked = extract_choice(response, labels, problem.meta.get("choices", ()),
                            mode="boxed" if require_boxed else "lenient")
    return picked == problem.answer
