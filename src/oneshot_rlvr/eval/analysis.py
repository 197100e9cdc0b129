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

from oneshot_rlvr.reward.extract import last_boxed as _grader_last_boxed

REFLECTION_WORDS = ("rethink", "recheck", "recalculate", "re-evaluate", "double-check", "verify", "wait")

# A word may not touch a letter, digit, underscore or hyphen on either side.
_WORD_RE = {w: re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])", re.IGNORECASE) for w in REFLECTION_WORDS}


def reflection_counts(text: str) -> dict[str, int]:
    """Occurrences of each self-reflection word in one response (every word present, zeros included)."""
    return {w: len(pattern.findall(text)) for w, pattern in _WORD_RE.items()}


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...}: the grader's own rule (`oneshot_rlvr.reward.extract`), so
    the format rate and the graders agree on what counts as a box (empty boxes and cut-off boxes do not)."""
    return _grader_last_boxed(text)


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
