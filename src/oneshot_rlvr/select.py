"""Which example to train on: rank a pool by its per-example accuracy history, write the training file.

A history maps an example id to its training accuracy in each epoch of an ordinary RLVR run on the
whole pool (`acc_step_500.json` from the paper, or `RUN/history.json` of `rlvr train`). Rankers return
`(id, score)` pairs, best first; the paper's pi_i is the example at rank i of `rank_std`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oneshot_rlvr.data.problems import ID_FIELDS, Problem, problems_from_rows, read_rows
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.runfolder import RunFolder

History = dict[str, list[float]]
Ranking = list[tuple[str, float]]

METHODS = ("std", "lim", "random")


def load_history(path: str | Path) -> History:
    """Read and check a history: a JSON object of id -> non-empty list of accuracies in [0, 1] (history.json,
    acc_step_500.json), or a W&B table export (see `TABLE_COLUMNS`). A run folder stands for its history.json."""
    p = Path(path)
    if p.is_dir():
        p = RunFolder(p).history
    try:
        text = p.read_text(encoding="utf-8")
        data: Any = _csv_table(text, p) if p.suffix.lower() == ".csv" else json.loads(text)
    except FileNotFoundError:
        raise RlvrError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RlvrError(f"{p}: not a readable JSON file ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("columns"), list) and isinstance(data.get("data"), list):
        data = _table_history(data["columns"], data["data"], p)
    if not isinstance(data, dict):
        raise RlvrError(f"{p}: expected a JSON object of example id -> list of per-epoch accuracies")
    if not data:
        raise RlvrError(f"{p}: no examples in the history")
    history: History = {}
    for key, accs in data.items():
        if not isinstance(accs, list) or not accs:
            raise RlvrError(f"{p}: example {key!r}: expected a non-empty list of accuracies")
        for epoch, acc in enumerate(accs):
            # bool is an int in Python; true/false in the file is a mistake, not an accuracy.
            if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0.0 <= acc <= 1.0:
                raise RlvrError(
                    f"{p}: example {key!r}, epoch {epoch}: accuracy {acc!r} is not a number in [0, 1]"
                )
        history[str(key)] = [float(a) for a in accs]
    return history


TABLE_COLUMNS = ("index", "history")
"""Columns read from a W&B table export: the per-example accuracy table the paper's trainer logged each step
(`index`, `accuracy`, `history`; `history` is the example's list of per-epoch accuracies so far). Accepted as
the table's JSON file (`*.table.json`: {"columns": [...], "data": [[...], ...]}) or its CSV download, where
`history` is a JSON list in one cell. When an index appears in several rows, the last (longest) history wins."""


def _csv_table(text: str, path: Path) -> dict[str, Any]:
    import csv
    import io

    reader = csv.reader(io.StringIO(text))
    columns = next(reader, None)
    if not columns:
        raise RlvrError(f"{path}: empty CSV; expected columns {', '.join(TABLE_COLUMNS)}")
    return {"columns": columns, "data": list(reader)}


def _table_history(columns: list[Any], rows: list[Any], path: Path) -> dict[str, Any]:
    missing = [c for c in TABLE_COLUMNS if c not in columns]
    if missing:
        raise RlvrError(f"{path}: a W&B table needs the columns {', '.join(TABLE_COLUMNS)}; "
                        f"missing {', '.join(missing)} (it has {', '.join(map(str, columns))})")
    at = {name: columns.index(name) for name in TABLE_COLUMNS}
    history: dict[str, Any] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != len(columns):
            raise RlvrError(f"{path}: row {number} does not have the {len(columns)} columns of the header")
        accs = row[at["history"]]
        if isinstance(accs, str):  # a CSV cell
            try:
                accs = json.loads(accs)
            except json.JSONDecodeError:
                raise RlvrError(f"{path}: row {number}, field 'history': {accs[:60]!r} is not a JSON list") from None
        key = row[at["index"]]
        # CSV cells and JSON numbers name the same example: 124, 124.0 and "124" are one id
        key = str(int(key)) if isinstance(key, float) and key.is_integer() else str(key)
        history[key] = accs
    return history


def _sorted(scores: Mapping[str, float]) -> Ranking:
    # sorted() is stable: equal scores keep the order the history file lists them in.
    return sorted(scores.items(), key=lambda item: -item[1])


def _std(values: Sequence[float]) -> float:
    # fsum makes the result independent of the order of the values, so equal multisets tie exactly.
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def rank_std(history: Mapping[str, Sequence[float]]) -> Ranking:
    """The paper's historical variance score: population std (ddof 0) of each history, descending."""
    return _sorted({key: _std(accs) for key, accs in history.items()})


def epoch_means(history: Mapping[str, Sequence[float]]) -> list[float]:
    """avg_e: mean accuracy at epoch e over the examples whose history reaches epoch e."""
    longest = max(len(accs) for accs in history.values())
    means = []
    for e in range(longest):
        column = [accs[e] for accs in history.values() if len(accs) > e]
        means.append(math.fsum(column) / len(column))
    return means


def rank_lim(history: Mapping[str, Sequence[float]]) -> Ranking:
    """LIMR-style learning-alignment score, descending.

    score = 1 - sum_e (acc_e - avg_e)^2 / sum_e (1 - avg_e)^2, with avg_e the pool's mean accuracy at
    epoch e: 1 for an example that follows the pool's average learning curve, lower the further it strays.

    Histories of unequal length (examples are drawn a different number of times in a run): avg_e is the
    mean over the examples that reached epoch e, and each example's sums run over its own epochs only.
    A zero denominator means avg_e = 1 at every epoch of the example; since accuracies are at most 1,
    every example then scored 1 there, the numerator is 0 too, and the example matches the average
    curve exactly: its score is defined as 1.0.
    """
    means = epoch_means(history)
    scores = {}
    for key, accs in history.items():
        num = math.fsum((a - m) ** 2 for a, m in zip(accs, means, strict=False))  # means may run longer
        den = math.fsum((1.0 - m) ** 2 for m in means[: len(accs)])
        scores[key] = 1.0 if den == 0.0 else 1.0 - num / den
    return _sorted(scores)


def rank_random(history: Mapping[str, Sequence[float]], seed: int) -> Ranking:
    """A seeded random order (the paper's random-selection baseline); scores are the uniform draws."""
    rng = random.Random(seed)
    return _sorted({key: rng.random() for key in history})


def rank(history: Mapping[str, Sequence[float]], method: str = "std", *, seed: int = 0) -> Ranking:
    """Dispatch to `rank_std`, `rank_lim` or `rank_random`."""
    if method == "std":
        return rank_std(history)
    if method == "lim":
        return rank_lim(history)
    if method == "random":
        return rank_random(history, seed)
    raise RlvrError(f"unknown ranking method {method!r} (choose from {', '.join(METHODS)})")


def format_ranking(ranking: Ranking, fmt: str = "tsv") -> str:
    """`rank<TAB>id<TAB>score` lines (rank from 1), or a JSON list of {rank, index, score}."""
    if fmt == "tsv":
        return "".join(f"{r}\t{key}\t{score:.6f}\n" for r, (key, score) in enumerate(ranking, start=1))
    if fmt == "json":
        rows = [{"rank": r, "index": key, "score": score} for r, (key, score) in enumerate(ranking, start=1)]
        return json.dumps(rows, indent=1) + "\n"
    raise RlvrError(f"unknown output format {fmt!r} (choose tsv or json)")


def parse_ranks(text: str, size: int) -> list[int]:
    """`"1,13"` -> [1, 13]; ranks count from 1 and must exist in a ranking of `size` examples."""
    ranks = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= size:
            raise RlvrError(f"--rank {text!r}: each rank must be a whole number from 1 to {size}")
        ranks.append(int(part))
    return ranks


def _row_id(row: Mapping[str, Any], position: int) -> str:
    """The id `load_problems` gives a row: the first id field present, else the row position."""
    for name in ID_FIELDS:
        value: Any = row
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            return str(value)
    return str(position)


def pick_examples(pool: str | Path, ids: Sequence[str]) -> list[Problem]:
    """The problems with these ids from a pool file, in the order asked.

    Only the chosen rows must be usable: a pool may hold an unusable row elsewhere (DSR-sub has one
    with an empty label) without stopping the choice of another example.
    """
    p = Path(pool)
    rows = read_rows(p)
    positions: dict[str, int] = {}
    for pos, row in enumerate(rows):
        if isinstance(row, Mapping):
            positions.setdefault(_row_id(row, pos), pos)
    chosen = []
    for key in ids:
        if key not in positions:
            raise RlvrError(f"{p}: no example with id {key!r}")
        pos = positions[key]
        try:
            [problem] = problems_from_rows([rows[pos]], where=str(p), source=p.stem)
        except RlvrError as err:  # the loader saw a one-row file: give the row's place in the pool
            raise RlvrError(str(err).replace(f"{p}: row 1 ", f"{p}: row {pos + 1} ", 1)) from None
        chosen.append(problem)
    return chosen


def repeat_examples(examples: Sequence[Problem], copies: int) -> list[Problem]:
    """`copies` rows split evenly over the examples, each example's copies together (64 x pi1, 64 x pi13)."""
    if not examples:
        raise RlvrError("no examples chosen")
    if copies < 1 or copies % len(examples):
        raise RlvrError(
            f"--copies {copies} does not split evenly over {len(examples)} examples; "
            f"use a positive multiple of {len(examples)}"
        )
    return [ex for ex in examples for _ in range(copies // len(examples))]


def write_training_file(
    examples: Sequence[Problem], copies: int, out: str | Path, *, template: str = "oneshot-train"
) -> Path:
    """The chosen example(s) repeated to `copies` rows, as verl-schema parquet or JSONL (by suffix)."""
    from oneshot_rlvr.export.verl import verl_rows, write_verl_file

    rows = verl_rows(repeat_examples(examples, copies), template=template, split="train")
    return write_verl_file(rows, Path(out))
