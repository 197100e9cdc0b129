"""Benchmark registry: loaders on the harness files (slices) and on generated files; protocols."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import shared_data_or_skip
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.eval.benchmarks import (
    BENCHMARKS,
    DATA_DIR_ENV,
    PAPER_BENCHMARKS,
    get_benchmark,
    load_benchmark,
    parse_benchmark_list,
    resolve_data_dir,
    user_benchmark,
)
from oneshot_rlvr.eval.run import EvalOptions, protocol_for

HARNESS = "Qwen2.5-Eval/evaluation/data"


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_protocols_follow_the_paper():
    for name in ("math500", "minerva_math", "olympiadbench"):
        p = get_benchmark(name).protocol
        assert (p.n, p.temperature, p.max_new_tokens) == (1, 0.0, 3072)
        assert p.sampling().greedy
    for name in ("aime24", "aime25", "amc23"):
        p = get_benchmark(name).protocol
        assert (p.n, p.temperature, p.top_p, p.max_new_tokens) == (8, 0.6, 1.0, 3072)
        assert not p.sampling().greedy
    assert all(BENCHMARKS[n].template is None for n in PAPER_BENCHMARKS)  # the run's qwen25-math-cot


def test_options_override_the_protocol():
    opts = EvalOptions(n=4, max_new_tokens=16)
    p = protocol_for(get_benchmark("aime24"), opts)
    assert (p.n, p.temperature, p.max_new_tokens) == (4, 0.6, 16)
    p = protocol_for(get_benchmark("math500"), EvalOptions(temperature=1.0))
    assert (p.n, p.temperature, p.max_new_tokens) == (1, 1.0, 3072)


def test_benchmark_lists_and_unknown_names():
    assert [b.name for b in parse_benchmark_list("paper")] == list(PAPER_BENCHMARKS)
    assert [b.name for b in parse_benchmark_list("aime24, math500,aime24")] == ["aime24", "math500"]
    with pytest.raises(RlvrError, match="unknown benchmark 'gsm9k'"):
        parse_benchmark_list("math500,gsm9k")


# Expected first rows, read by hand from the harness files.
FIRST_ROWS = {
    "math500": ("test/precalculus/807.json", r"\left( 3, \frac{\pi}{2} \right)", "Convert the point $(0,3)"),
    "aime24": ("60", "204", "Every morning Aya goes for a $9$-kilometer-long walk"),
    "aime25": ("0", "70", "Find the sum of all integer bases $b>9$"),
    "amc23": ("0", "27", "Cities $A$ and $B$ are $45$ miles apart."),
    "minerva_math": ("0", "1.6", "Each of the two Magellan telescopes"),
    "olympiadbench": ("1606", "2", "Xenia and Sergey play the following game."),
}
SIZES = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "minerva_math": 272, "olympiadbench": 675}


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_harness_files_slice(name):
    data = shared_data_or_skip(HARNESS)
    problems = load_benchmark(get_benchmark(name), data_dir=data, limit=3)
    assert len(problems) == 3
    pid, gold, start = FIRST_ROWS[name]
    assert (problems[0].id, problems[0].answer) == (pid, gold)
    assert problems[0].prompt.startswith(start)
    assert all(p.source == name for p in problems)


@pytest.mark.parametrize("name", PAPER_BENCHMARKS)
def test_harness_files_whole(name):
    data = shared_data_or_skip(HARNESS)
    problems = load_benchmark(get_benchmark(name), data_dir=data)
    assert len(problems) == SIZES[name]
    assert all(p.answer.strip() and p.prompt.strip() for p in problems)
    assert len({p.id for p in problems}) == len(problems)


def test_gold_readers_on_the_harness_files():
    data = shared_data_or_skip(HARNESS)
    minerva = load_benchmark(get_benchmark("minerva_math"), data_dir=data, limit=3)
    assert [p.answer for p in minerva] == ["1.6", "4.5e33", "41.8"]  # last \boxed{} of the solution
    assert "solution" in minerva[0].meta
    olympiad = {p.id: p.answer for p in load_benchmark(get_benchmark("olympiadbench"), data_dir=data)}
    assert olympiad["1664"] == "69,84"  # final_answer ['$69$,$84$'] without its $ delimiters
    amc = load_benchmark(get_benchmark("amc23"), data_dir=data)
    assert all("." not in p.answer for p in amc)  # 27.0 -> 27; every AMC23 answer is an integer


@pytest.mark.parametrize(("name", "x8"), [("aime24", "aime24x8"), ("aime25", "aime25x8"), ("amc23", "amc23x8")])
def test_x8_files_are_each_problem_eight_times(name, x8):
    # Sampling 8 responses for each problem of the plain file is the harness's x8 protocol.
    data = shared_data_or_skip(HARNESS)
    plain = load_benchmark(get_benchmark(name), data_dir=data)
    repeated = load_benchmark(user_benchmark(f"{x8}={data / x8 / 'test.jsonl'}", question_field="problem"))
    assert Counter(p.prompt for p in repeated) == {p.prompt: 8 for p in plain}


def test_generated_files_in_each_layout(tmp_path):
    data = tmp_path / "data"
    _write_jsonl(data / "math500/test.jsonl", [
        {"problem": "1+1?", "solution": "x", "answer": "2", "unique_id": "test/a/1.json"}])
    _write_jsonl(data / "aime24/test.jsonl", [
        {"id": 60, "problem": "P?", "solution": r"\framebox{7}", "answer": "7", "question": "P?"}])
    _write_jsonl(data / "aime25/test.jsonl", [{"problem": "Q1", "answer": "70"}, {"problem": "Q2", "answer": "5"}])
    _write_jsonl(data / "amc23/test.jsonl", [
        {"id": 3, "problem": "A?", "answer": 27.0}, {"id": 4, "problem": "B?", "answer": -1.0}])
    _write_jsonl(data / "minerva_math/test.jsonl", [
        {"problem": "M?", "solution": r"so \boxed{\frac{1}{2}} \mathrm{~cm}", "type": "t", "idx": 9}])
    _write_jsonl(data / "olympiadbench/test.jsonl", [
        {"id": 5, "question": "O?", "final_answer": ["$(1,2)$", "$3$"], "is_multiple_answer": True}])
    got = {name: [(p.id, p.prompt, p.answer) for p in load_benchmark(get_benchmark(name), data_dir=data)]
           for name in PAPER_BENCHMARKS}
    assert got == {
        "math500": [("test/a/1.json", "1+1?", "2")],
        "aime24": [("60", "P?", "7")],
        "aime25": [("0", "Q1", "70"), ("1", "Q2", "5")],
        "amc23": [("3", "A?", "27"), ("4", "B?", "-1")],
        "minerva_math": [("9", "M?", r"\frac{1}{2}")],
        "olympiadbench": [("5", "O?", "(1,2), 3")],
    }


def test_a_minerva_row_without_a_boxed_answer_is_named(tmp_path):
    data = tmp_path / "data"
    _write_jsonl(data / "minerva_math/test.jsonl", [
        {"problem": "M?", "solution": r"\boxed{1}", "idx": 0}, {"problem": "N?", "solution": "none", "idx": 1}])
    with pytest.raises(RlvrError, match=r"minerva_math/test\.jsonl: row 2 .*'solution'"):
        load_benchmark(get_benchmark("minerva_math"), data_dir=data)


def test_data_dir_from_the_environment(tmp_path, monkeypatch):
    data = tmp_path / "env_data"
    _write_jsonl(data / "aime25/test.jsonl", [{"problem": "Q", "answer": "1"}])
    monkeypatch.setenv(DATA_DIR_ENV, str(data))
    assert resolve_data_dir() == data
    assert load_benchmark(get_benchmark("aime25"))[0].answer == "1"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"  # the flag wins


def test_missing_file_without_a_hub_copy_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(RlvrError) as err:
        load_benchmark(get_benchmark("math500"), data_dir=tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("math500: no file") and "math500/test.jsonl" in message
    assert "HuggingFaceH4/MATH-500" in message
    with pytest.raises(RlvrError, match="no such file"):
        load_benchmark(user_benchmark(f"mine={tmp_path / 'absent.jsonl'}"))


def test_user_benchmarks_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = _write_jsonl(tmp_path / "set.jsonl", [{"q": "What is 2+2?", "a": "4", "key": "k1"}])
    bench = user_benchmark(f"mine={jsonl}", question_field="q", answer_field="a", id_field="key")
    assert (bench.name, bench.kind, bench.protocol.n, bench.protocol.temperature) == ("mine", "math", 1, 0.0)
    (p,) = load_benchmark(bench)
    assert (p.id, p.prompt, p.answer, p.source) == ("k1", "What is 2+2?", "4", "mine")

    parquet = tmp_path / "set.parquet"
    pq.write_table(pa.table({"query": ["x?", "y?"], "target": ["1", "2"]}), parquet)
    problems = load_benchmark(user_benchmark(f"pq={parquet}", question_field="query", answer_field="target"))
    assert [(p.prompt, p.answer) for p in problems] == [("x?", "1"), ("y?", "2")]

    with pytest.raises(RlvrError, match="row 1 has a missing or empty answer"):
        load_benchmark(user_benchmark(f"bad={jsonl}", question_field="q", answer_field="nope"))


def test_user_file_under_a_registered_name_keeps_its_protocol(tmp_path):
    path = _write_jsonl(tmp_path / "aime.jsonl", [{"problem": "Q", "answer": "3"}])
    bench = user_benchmark(f"aime24={path}")
    assert bench.protocol.n == 8 and bench.label == "AIME24"
    assert load_benchmark(bench, data_dir=tmp_path / "ignored")[0].answer == "3"


@pytest.mark.parametrize("spec", ["noequals", "=file.jsonl", "name=", "bad name=f.jsonl"])
def test_bad_benchmark_specs(spec):
    with pytest.raises(RlvrError, match="--benchmark"):
        user_benchmark(spec)


def test_user_benchmark_from_a_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets is an optional extra: pip install datasets")
    rows = {"question": ["1+1?", "2+2?"], "answer": ["2", "4"]}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "mine"))
    bench = user_benchmark(f"mine={tmp_path / 'mine'}")
    assert [(p.prompt, p.answer) for p in load_benchmark(bench)] == [("1+1?", "2"), ("2+2?", "4")]
    # A registered name keeps its gold reader: amc23 reads integral answers from a folder too.
    datasets.Dataset.from_dict({"problem": ["x?"], "answer": [27.0]}).save_to_disk(str(tmp_path / "amc"))
    assert load_benchmark(user_benchmark(f"amc23={tmp_path / 'amc'}"))[0].answer == "27"


def test_user_benchmark_hub_id_offline_is_one_line(monkeypatch):
    datasets = pytest.importorskip("datasets", reason="datasets is an optional extra: pip install datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    bench = user_benchmark("gsm=hf:no-such-org/gsm-copy:main")
    with pytest.raises(RlvrError) as err:
        load_benchmark(bench)
    message = str(err.value)
    assert "\n" not in message and message.startswith("hf:no-such-org/gsm-copy:main: cannot load")
    assert "split 'test'" in message and ".save_to_disk('FOLDER')" in message
    with pytest.raises(RlvrError, match="expected hf:ORG/NAME"):
        user_benchmark("gsm=hf:a/b/c")
