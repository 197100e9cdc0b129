"""Response analysis: self-reflection words, \\boxed{} format, lengths.

Self-reflection words are counted as whole words, case-insensitively, in exactly these forms:
"rethink", "recheck", "recalculate", "re-evaluate", "double-check", "verify", "wait". Inflected forms
("verified", "verifying", "waiting", "rechecked", "double-checking") do NOT count, and neither does a
word glued to a hyphen ("re-verify"): the paper tracks these exact words, and counting "waiting"
would mix in ordinary prose ("waiting time" in a word problem). "Wait," and "WAIT" count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REFLECTION_WORDS = ("rethink", "recheck", "recalculate", "re-evaluate", "double-check", "verify", "wait")

# A word may not touch a letter, digit, underscore or hyphen on either side.
_WORD_RE = {w: re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])", re.IGNORECASE) for w in REFLECTION_WORDS}
_BOXED = re.compile(r"\\boxed\s*\{")


def reflection_counts(text: str) -> dict[str, int]:
    """Occurrences of each self-reflection word in one response (every word present, zeros included)."""
    return {w: len(pattern.findall(text)) for w, pattern in _WORD_RE.items()}


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} with balanced braces, or None (also when it is unclosed)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth = 1
    for j in range(starts[-1], len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[starts[-1] : j]
    return None


def has_boxed(text: str) -> bool:
    """The response has a complete \\boxed{...} (the answer format the prompt asks for)."""
    return last_boxed(text) is not None


def reflection_summary(counts: Sequence[Mapping[str, int]]) -> dict[str, Any]:
    """Per word: total count, mean per response, fraction of responses using it; plus any-word rate.

    `counts` holds one `reflection_counts` dict per response.
    """
    n = len(counts)
    words: dict[str, dict[str, float]] = {}
    for w in REFLECTION_WORDS:
        per = [int(c.get(w, 0)) for c in counts]
        words[w] = {
            "total": sum(per),
            "per_response": sum(per) / n if n else 0.0,
            "response_rate": sum(1 for x in per if x) / n if n else 0.0,
        }
    any_rate = sum(1 for c in counts if any(c.get(w, 0) for w in REFLECTION_WORDS)) / n if n else 0.0
    return {"responses": n, "any_rate": any_rate, "words": words}


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0
