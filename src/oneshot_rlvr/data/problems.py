"""The `Problem` type and loaders for JSONL, JSON, parquet (verl schema) and Hugging Face datasets
(a `save_to_disk` folder or a hub id `hf:ORG/NAME[:CONFIG][@SPLIT]`, see `oneshot_rlvr.data.hf`).

Field names differ between files in the wild (`question` / `problem` / `prompt`, `answer` /
`final_answer` / `reward_model.ground_truth`, ...). Loaders try the usual names in order unless
told which field to use, and fail with a message naming the file and row when a row has no usable
question or answer: a silently empty answer would become a silent zero reward.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError

log = logging.getLogger(__name__)


class BadRowError(RlvrError):
    """A row without question text or answer (what `skip_bad_rows` leaves out)."""

QUESTION_FIELDS = ("question", "problem", "prompt", "query", "input", "Question", "content")
ANSWER_FIELDS = ("answer", "final_answer", "reward_model.ground_truth", "ground_truth", "gt", "target", "Answer")
ID_FIELDS = ("id", "idx", "unique_id", "extra_info.index", "index", "ID")


@dataclass(frozen=True)
class Problem:
    """One problem: `prompt` is the raw question text (no template), `answer` the gold answer."""

    id: str
    prompt: str
    answer: str
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _get(row: Mapping[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text_of(value: Any) -> str | None:
    """Question text from a string or a chat message list (the last user turn)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and value and all(isinstance(m, Mapping) for m in value):
        users = [m.get("content") for m in value if m.get("role") == "user"]
        text = users[-1] if users else value[-1].get("content")
        return text if isinstance(text, str) else None
    return None


def _answer_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        # Harness files sometimes wrap a gold answer in $...$.
        if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
            text = text[1:-1].strip()
        return text
    if isinstance(value, Sequence):  # several final answers (OlympiadBench)
        parts = [_answer_of(v) for v in value]
        if parts and all(parts):
            return ", ".join(p for p in parts if p)
    return None


def _pick(row: Mapping[str, Any], explicit: str | None, candidates: Sequence[str]) -> tuple[str | None, Any]:
    names = (explicit,) if explicit else candidates
    for name in names:
        value = _get(row, name)
        if value is not None:
            return name, value
    return None, None


def problems_from_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    where: str,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    source: str = "",
    skip_bad_rows: bool = False,
) -> list[Problem]:
    """Turn dict rows into problems; `where` names the file for error messages.

    A row without question text or answer is an error naming it, or with `skip_bad_rows` is left
    out with a warning that names every skipped row (DSR-sub's row 266, id 265, has an empty label).
    """
    problems = []
    skipped: list[str] = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise RlvrError(f"{where}: row {i} is not an object")
        _, pid = _pick(row, id_field, ID_FIELDS)
        label = f"row {i}" + (f" (id {pid})" if pid is not None else "")
        qname, qvalue = _pick(row, question_field, QUESTION_FIELDS)
        question = _text_of(qvalue)
        aname, avalue = _pick(row, answer_field, ANSWER_FIELDS)
        answer = _answer_of(avalue)
        problem_text = None
        if not question or not question.strip():
            field = qname or question_field or "/".join(QUESTION_FIELDS[:3])
            problem_text = f"has no question text (field {field!r})"
        elif not answer:
            field = aname or answer_field or "/".join(ANSWER_FIELDS[:3])
            problem_text = f"has a missing or empty answer (field {field!r})"
        if problem_text is not None:
            if not skip_bad_rows:
                raise BadRowError(f"{where}: {label} {problem_text}")
            skipped.append(label)
            continue
        assert question is not None and answer is not None
        meta = {k: v for k, v in row.items() if k not in (qname, aname)}
        row_source = row.get("data_source") if isinstance(row.get("data_source"), str) else source
        problems.append(
            Problem(id=str(pid if pid is not None else i - 1), prompt=question, answer=answer,
                    source=row_source or source, meta=meta)
        )
    if skipped:
        log.warning("%s: skipped %d row(s) without question or answer: %s", where, len(skipped), ", ".join(skipped))
    if not problems:
        raise RlvrError(f"{where}: no problems found")
    return problems


def _read_jsonl(path: Path) -> list[Mapping[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise RlvrError(f"{path}: line {lineno} is not valid JSON ({err.msg})") from None
    return rows


def _read_parquet(path: Path) -> list[Mapping[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:  # not parquet, truncated, or an unreadable schema
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RlvrError(f"{path}: not a readable parquet file ({line})") from None
    return list(table.to_pylist())


def read_rows(path: str | Path, *, split: str | None = None) -> list[Mapping[str, Any]]:
    """Rows of a JSONL, JSON (array) or parquet file, a datasets folder (FOLDER[@SPLIT]) or hf:ID as dicts;
    `split` is the default split of a hub id or a folder of several splits."""
    from oneshot_rlvr.data import hf

    if hf.is_hub_spec(path):
        return hf.hub_rows(str(path), split or "train")
    if hf.is_dataset_folder(path):
        return hf.folder_rows(path, split)
    p = Path(path)
    if not p.exists():
        raise RlvrError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(p)
    if suffix == ".json":
        text = p.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return _read_jsonl(p)  # JSON Lines named .json happens in the wild
        if isinstance(data, list):
            return data
        raise RlvrError(f"{p}: expected a JSON array of objects")
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(p)
    raise RlvrError(f"{p}: unknown file type {suffix!r} (use .jsonl, .json or .parquet)")


def load_problems(
    path_or_id: str | Path,
    *,
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    split: str = "train",
    limit: int | None = None,
    skip_bad_rows: bool = False,
) -> list[Problem]:
    """Load problems from a local file, a datasets folder, `hf:ID`, or (no such file) a bare hub dataset id."""
    from oneshot_rlvr.data import hf

    p = Path(path_or_id)
    if hf.is_hub_spec(path_or_id) or hf.is_dataset_folder(path_or_id):
        rows = read_rows(path_or_id, split=split)
        where = str(path_or_id)
        source = hf.parse_hub_id(str(path_or_id), split).dataset if hf.is_hub_spec(path_or_id) else p.name
    elif p.exists() or p.suffix.lower() in (".jsonl", ".json", ".parquet", ".ndjson"):
        rows = read_rows(p)
        where = str(p)
        source = p.stem
    else:
        rows = _hub_rows(str(path_or_id), split)
        where = f"{path_or_id} [{split}]"
        source = str(path_or_id)
    if limit is not None:
        rows = rows[:limit]
    return problems_from_rows(
        rows, where=where, question_field=question_field, answer_field=answer_field,
        id_field=id_field, source=source, skip_bad_rows=skip_bad_rows,
    )


def _hub_rows(dataset_id: str, split: str) -> list[Mapping[str, Any]]:
    """A bare id (no `hf:`) that is no local file: tried as a hub dataset, the error says both."""
    from oneshot_rlvr.data import hf

    try:
        return hf.hub_rows(dataset_id, split)
    except RlvrError as err:
        raise RlvrError(f"{dataset_id}: no such file; as a hub dataset id: {err}") from None
