"""Benchmark registry: name -> file, fields, how the gold answer is read, decoding protocol.

Files are the JSONL files of the Qwen2.5-Math evaluation harness, looked up under a data folder:
`--data-dir`, else `$RLVR_EVAL_DATA`, else `../shared/data/oneshot_rlvr/Qwen2.5-Eval/evaluation/data`
relative to the working directory. A benchmark whose file is missing falls back to a Hugging Face
dataset (needs `datasets` and a network; failing that, one line says what to do).

Protocol (the paper's): greedy for MATH500, Minerva Math and OlympiadBench; 8 samples at temperature
0.6 scored as avg@8 for AIME24, AIME25 and AMC23, read from the 30/30/40-problem files (sampling 8
responses per problem is the same as the harness's x8 files, which repeat each problem 8 times);
3072 new tokens; the `qwen25-math-cot` template unless another is chosen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from oneshot_rlvr.data.hf import is_dataset_folder, is_hub_spec, parse_hub_id
from oneshot_rlvr.data.problems import Problem, problems_from_rows, read_rows
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.analysis import last_boxed
from oneshot_rlvr.eval.choice import choice_problems
from oneshot_rlvr.rollout.base import SamplingParams

DATA_DIR_ENV = "RLVR_EVAL_DATA"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "oneshot_rlvr" / "Qwen2.5-Eval" / "evaluation" / "data"
PAPER_BENCHMARKS = ("math500", "aime24", "aime25", "amc23", "minerva_math", "olympiadbench")
DEFAULT_TEMPLATE = "qwen25-math-cot"
MAX_NEW_TOKENS = 3072


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is decoded: n samples per problem at a temperature (0 = greedy)."""

    n: int = 1
    """Samples per problem; accuracy is their mean (avg@n)."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_new_tokens: int = MAX_NEW_TOKENS
    """Response length limit; longer responses are cut and count as truncated."""

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p,
                              max_new_tokens=self.max_new_tokens)


GREEDY = Protocol()
AVG8 = Protocol(n=8, temperature=0.6)


@dataclass(frozen=True)
class HubSource:
    """Where a benchmark lives on the Hugging Face hub, with that copy's own field names."""

    dataset: str
    split: str = "test"
    config: str | None = None
    question_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None
    gold: str = "field"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its file, fields, gold-answer reader, kind, protocol and column label."""

    name: str
    file: str
    """Path relative to the data folder (registry entries) or an absolute path (user files)."""
    question_field: str | None = None
    answer_field: str | None = None
    id_field: str | None = None
    gold: str = "field"
    """How the gold answer is read from `answer_field`: field, last-boxed, integral, answer-list."""
    kind: str = "math"
    """math (graded by the math verifier) or choice (multiple choice, graded by letter)."""
    protocol: Protocol = GREEDY
    template: str | None = None
    """Prompt template; None uses the evaluation's template (qwen25-math-cot by default)."""
    hub: HubSource | None = None
    label: str = ""
    """Column name in printed tables."""

    @property
    def column(self) -> str:
        return self.label or self.name


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("math500", "math500/test.jsonl", "problem", "answer", "unique_id", label="MATH500",
              hub=HubSource("HuggingFaceH4/MATH-500", "test", None, "problem", "answer", "unique_id")),
    Benchmark("aime24", "aime24/test.jsonl", "problem", "answer", "id", protocol=AVG8, label="AIME24",
              hub=HubSource("HuggingFaceH4/aime_2024", "train", None, "problem", "answer", "id")),
    Benchmark("aime25", "aime25/test.jsonl", "problem", "answer", None, protocol=AVG8, label="AIME25",
              hub=HubSource("yentinglin/aime_2025", "train", None, "problem", "answer", "id")),
    Benchmark("amc23", "amc23/test.jsonl", "problem", "answer", "id", gold="integral", protocol=AVG8,
              label="AMC23", hub=HubSource("zwhe99/amc23", "test", None, "question", "answer", "id",
                                           gold="integral")),
    Benchmark("minerva_math", "minerva_math/test.jsonl", "problem", "solution", "idx", gold="last-boxed",
              label="Minerva", hub=HubSource("math-ai/minervamath", "test", None, "question", "answer")),
    Benchmark("olympiadbench", "olympiadbench/test.jsonl", "question", "final_answer", "id",
              gold="answer-list", label="Olympiad",
              hub=HubSource("Hothan/OlympiadBench", "train", "OE_TO_maths_en_COMP", "question",
                            "final_answer", "id", gold="answer-list")),
    Benchmark("arc_easy", "ARC-Easy/ARC-Easy-Test.jsonl", kind="choice", label="ARC-E",
              hub=HubSource("allenai/ai2_arc", "test", "ARC-Easy")),
    Benchmark("arc_challenge", "ARC-Challenge/ARC-Challenge-Test.jsonl", kind="choice", label="ARC-C",
              hub=HubSource("allenai/ai2_arc", "test", "ARC-Challenge")),
)}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise RlvrError(
            f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)}; "
            f"or give a file with --benchmark NAME=FILE)"
        )
    return BENCHMARKS[name]


def parse_benchmark_list(text: str) -> list[Benchmark]:
    """`math500,aime24` -> registry entries; `paper` names the six paper benchmarks."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        for name in (PAPER_BENCHMARKS if part == "paper" else (part,) if part else ()):
            if name not in names:
                names.append(name)
    return [get_benchmark(n) for n in names]


def user_benchmark(
    spec: str, *, question_field: str | None = None, answer_field: str | None = None,
    id_field: str | None = None,
) -> Benchmark:
    """`NAME=FILE` from the command line. A registered NAME keeps its loader and protocol but reads FILE;
    any other NAME is a greedy math benchmark with the given (or the usual) field names. FILE may also be a
    datasets save_to_disk folder (FOLDER[@SPLIT]) or hf:ORG/NAME[:CONFIG][@SPLIT] (split `test` unless named);
    a FILE that does not exist and has no file suffix is taken as a Hugging Face dataset id (split `test`)."""
    name, sep, file = spec.partition("=")
    name, file = name.strip(), file.strip()
    if not sep or not name or not file:
        raise RlvrError(f"--benchmark {spec!r}: expected NAME=FILE")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise RlvrError(f"--benchmark {spec!r}: NAME may hold only letters, digits, '_', '-', '.'")
    path = Path(file).expanduser()
    base = BENCHMARKS.get(name, Benchmark(name, "", question_field, answer_field, id_field))
    base = replace(
        base,
        question_field=question_field or base.question_field,
        answer_field=answer_field or base.answer_field,
        id_field=id_field or base.id_field,
    )
    if is_hub_spec(file) or is_dataset_folder(file):  # hf:ID or a save_to_disk folder, read as given
        parse_hub_id(file, "test") if is_hub_spec(file) else None  # a malformed id fails here, not later
        return replace(base, file=file if is_hub_spec(file) else str(Path(file).expanduser().resolve()), hub=None)
    hub = None
    if not path.exists() and not path.suffix:
        hub = HubSource(file, "test", None, question_field, answer_field, id_field)
    return replace(base, file=str(path.resolve()), hub=hub)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else DEFAULT_DATA_DIR


def load_benchmark(bench: Benchmark, *, data_dir: str | Path | None = None,
                   limit: int | None = None) -> list[Problem]:
    """The benchmark's problems (the first `limit` of them), from its file or its hub copy."""
    path = Path(bench.file)
    if not path.is_absolute() and not is_hub_spec(bench.file):
        path = resolve_data_dir(data_dir) / path
    if is_hub_spec(bench.file) or is_dataset_folder(bench.file):
        rows, where = read_rows(bench.file, split="test"), bench.file
        fields = (bench.question_field, bench.answer_field, bench.id_field, bench.gold)
    elif path.exists():
        rows, where = read_rows(path), str(path)
        fields = (bench.question_field, bench.answer_field, bench.id_field, bench.gold)
    elif bench.hub is not None:
        rows, where = _hub_rows(bench, path), f"{bench.hub.dataset} [{bench.hub.split}]"
        h = bench.hub
        fields = (h.question_field, h.answer_field, h.id_field, h.gold)
    else:
        raise RlvrError(f"{bench.name}: no such file {path} (set --data-dir or ${DATA_DIR_ENV})")
    if limit is not None:
        rows = rows[: max(0, limit)]
    if bench.kind == "choice":
        return choice_problems(rows, where=where, source=bench.name)
    question_field, answer_field, id_field, gold = fields
    return _math_problems(rows, where, bench.name, question_field, answer_field, id_field, gold)


def _math_problems(rows: Sequence[Mapping[str, Any]], where: str, source: str, question_field: str | None,
                   answer_field: str | None, id_field: str | None, gold: str) -> list[Problem]:
    if gold == "field":
        return problems_from_rows(rows, where=where, question_field=question_field,
                                  answer_field=answer_field, id_field=id_field, source=source)
    reader = _GOLD_READERS[gold]
    field = answer_field or "answer"
    prepared = []
    for i, row in enumerate(rows, start=1):
        value = reader(row.get(field)) if isinstance(row, Mapping) else None
        if not value:
            raise RlvrError(f"{where}: row {i} has no usable gold answer in field {field!r} ({gold})")
        prepared.append({**row, "_gold": value})
    problems = problems_from_rows(prepared, where=where, question_field=question_field,
                                  answer_field="_gold", id_field=id_field, source=source)
    return [replace(p, meta={k: v for k, v in p.meta.items() if k != "_gold"}) for p in problems]


def _integral(value: Any) -> str | None:
    """27.0 / "27.0" -> "27" (AMC23 stores integer answers as floats); anything else unchanged."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    m = re.fullmatch(r"(-?\d+)\.0*", text)
    return m.group(1) if m else text


def _answer_list(value: Any) -> str | None:
    """OlympiadBench's `final_answer` list: each item without its $...$ delimiters, joined by ", "."""
    items = value if isinstance(value, list) else [value]
    parts = [str(v).replace("$", "").strip() for v in items if v is not None]
    return ", ".join(p for p in parts if p) or None


def _boxed_of(value: Any) -> str | None:
    """Minerva Math keeps the gold answer as the last \\boxed{} of its `solution`."""
    boxed = last_boxed(value) if isinstance(value, str) else None
    return boxed.strip() if boxed else None


_GOLD_READERS: dict[str, Callable[[Any], str | None]] = {
    "integral": _integral, "answer-list": _answer_list, "last-boxed": _boxed_of,
}


def _hub_rows(bench: Benchmark, missing: Path) -> list[Mapping[str, Any]]:
    assert bench.hub is not None
    src = bench.hub
    prefix = f"{bench.name}: no file {missing} (set --data-dir or ${DATA_DIR_ENV})"
    try:
        import datasets
    except ImportError:
        hint = f"reading {src.dataset} from the hub needs `pip install datasets`"
        raise RlvrError(f"{prefix}; {hint}") from None
    try:
        ds = datasets.load_dataset(src.dataset, src.config, split=src.split)
    except Exception as err:  # offline, unknown id, missing split: one clear line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RlvrError(f"{prefix}, and hub dataset {src.dataset} could not be loaded ({first})") from None
    return [dict(r) for r in ds]
