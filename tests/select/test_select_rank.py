"""Rankers, history checks and the training-file writer on small hand-made inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from oneshot_rlvr.data import Problem, load_problems
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.select import (
    epoch_means,
    format_ranking,
    load_history,
    parse_ranks,
    pick_examples,
    rank,
    rank_lim,
    rank_random,
    rank_std,
    repeat_examples,
    write_training_file,
)


def test_rank_std_population_std_descending_ties_in_file_order() -> None:
    # population stds: a 0.5, b 0, c 0.5, d 0.25 (a sample std would give a 0.7071, c 0.5774)
    history = {"a": [0.0, 1.0], "b": [0.5, 0.5], "c": [0.0, 0.0, 1.0, 1.0], "d": [0.25, 0.75]}
    assert rank_std(history) == [("a", 0.5), ("c", 0.5), ("d", 0.25), ("b", 0.0)]
    reordered = {k: history[k] for k in ("c", "b", "d", "a")}
    assert [k for k, _ in rank_std(reordered)] == ["c", "a", "d", "b"]


def test_rank_std_ties_are_exact_for_permuted_histories() -> None:
    values = [0.125, 0.375, 0.875, 0.5, 0.0, 1.0, 0.625]
    history = {"x": values, "y": values[::-1], "z": sorted(values)}
    scores = [s for _, s in rank_std(history)]
    assert scores[0] == scores[1] == scores[2]
    assert [k for k, _ in rank_std(history)] == ["x", "y", "z"]


def test_rank_lim_hand_computed() -> None:
    # avg_e = [0.25, 0.75]; c follows it exactly; a and b are off by 0.25 at both epochs:
    # 1 - (0.0625 + 0.0625) / (0.75^2 + 0.25^2) = 1 - 0.125 / 0.625 = 0.8
    history = {"a": [0.0, 0.5], "b": [0.5, 1.0], "c": [0.25, 0.75]}
    ranking = rank_lim(history)
    assert [k for k, _ in ranking] == ["c", "a", "b"]
    assert [s for _, s in ranking] == pytest.approx([1.0, 0.8, 0.8])


def test_rank_lim_unequal_lengths_use_each_examples_own_epochs() -> None:
    # avg_e = [0.25, 0.75, 0.5] (epoch 2 only has a).
    # a: 1 - (0.0625 + 0.0625 + 0) / (0.5625 + 0.0625 + 0.25) = 1 - 1/7; b: 1 - 0.125 / 0.625 = 0.8.
    # Truncating every history to the shortest would tie them at 0.8.
    history = {"b": [0.5, 0.5], "a": [0.0, 1.0, 0.5]}
    assert epoch_means(history) == pytest.approx([0.25, 0.75, 0.5])
    ranking = rank_lim(history)
    assert [k for k, _ in ranking] == ["a", "b"]
    assert [s for _, s in ranking] == pytest.approx([6 / 7, 0.8])


def test_rank_lim_zero_denominator_scores_one() -> None:
    ranking = rank_lim({"a": [1.0, 1.0], "b": [1.0]})
    assert ranking == [("a", 1.0), ("b", 1.0)]
    assert all(math.isfinite(s) for _, s in ranking)


def test_rank_random_is_a_seeded_permutation() -> None:
    history = {str(i): [0.5] for i in range(30)}
    first = rank_random(history, seed=3)
    assert first == rank_random(history, seed=3)
    assert sorted(k for k, _ in first) == sorted(history)
    assert [k for k, _ in first] != [k for k, _ in rank_random(history, seed=4)]
    assert [s for _, s in first] == sorted((s for _, s in first), reverse=True)


def test_rank_dispatch_and_unknown_method() -> None:
    history = {"a": [0.0, 1.0], "b": [0.5, 0.5]}
    assert rank(history, "std") == rank_std(history)
    assert rank(history, "lim") == rank_lim(history)
    assert rank(history, "random", seed=1) == rank_random(history, 1)
    with pytest.raises(RlvrError, match="unknown ranking method 'var'"):
        rank(history, "var")


def test_format_ranking_tsv_and_json() -> None:
    ranking = [("124", 0.40675), ("7", 0.0)]
    assert format_ranking(ranking, "tsv") == "1\t124\t0.406750\n2\t7\t0.000000\n"
    assert json.loads(format_ranking(ranking, "json")) == [
        {"rank": 1, "index": "124", "score": 0.40675}, {"rank": 2, "index": "7", "score": 0.0}]


def test_load_history_reads_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"3": [0, 0.5, 1], "1": [0.125]}))
    history = load_history(path)
    assert history == {"3": [0.0, 0.5, 1.0], "1": [0.125]}
    assert list(history) == ["3", "1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a JSON object"),
        ("{}", "no examples"),
        ('{"5": []}', "example '5': expected a non-empty list"),
        ('{"5": 0.5}', "example '5': expected a non-empty list"),
        ('{"5": [0.5, true]}', "example '5', epoch 1: accuracy True"),
        ('{"5": [0.5, "1"]}', "example '5', epoch 1"),
        ('{"9": [1.5]}', "example '9', epoch 0: accuracy 1.5 is not a number in \\[0, 1\\]"),
        ('{"9": [NaN]}', "example '9', epoch 0"),
        ("{not json", "not a readable JSON file"),
    ],
)
def test_load_history_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hist.json"
    path.write_text(text)
    with pytest.raises(RlvrError, match=message) as info:
        load_history(path)
    assert "hist.json" in str(info.value)


def test_load_history_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RlvrError, match=r"nope\.json: no such file"):
        load_history(tmp_path / "nope.json")


def test_parse_ranks() -> None:
    assert parse_ranks("1, 13", 20) == [1, 13]
    for bad in ("0", "21", "x", "1,,2", "-1"):
        with pytest.raises(RlvrError, match="--rank"):
            parse_ranks(bad, 20)


def _problem(pid: str, text: str = "What is 1+1?", answer: str = "2") -> Problem:
    return Problem(id=pid, prompt=text, answer=answer, source="toy")


def test_repeat_examples_splits_evenly_and_rejects_uneven() -> None:
    a, b = _problem("1"), _problem("2")
    rows = repeat_examples([a, b], 6)
    assert [p.id for p in rows] == ["1", "1", "1", "2", "2", "2"]
    with pytest.raises(RlvrError, match="--copies 5 does not split evenly over 2 examples"):
        repeat_examples([a, b], 5)
    with pytest.raises(RlvrError, match="--copies 0"):
        repeat_examples([a], 0)


def _pool(tmp_path: Path) -> Path:
    pool = tmp_path / "pool.jsonl"
    rows = [
        {"id": 10, "question": "What is 2+3?", "answer": "5"},
        {"id": 11, "question": "What is 2*3?", "answer": ""},
        {"id": 12, "question": "What is 9-3?", "answer": "$6$"},
    ]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pool


def test_pick_examples_in_order_asked_and_ignores_other_bad_rows(tmp_path: Path) -> None:
    picked = pick_examples(_pool(tmp_path), ["12", "10"])
    assert [(p.id, p.prompt, p.answer) for p in picked] == [("12", "What is 9-3?", "6"), ("10", "What is 2+3?", "5")]


def test_pick_examples_errors(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    with pytest.raises(RlvrError, match=r"pool\.jsonl: no example with id '99'"):
        pick_examples(pool, ["99"])
    with pytest.raises(RlvrError, match=r"pool\.jsonl: row 2 \(id 11\) has a missing or empty answer"):
        pick_examples(pool, ["11"])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_training_file_round_trips_through_the_loader(tmp_path: Path, suffix: str) -> None:
    examples = pick_examples(_pool(tmp_path), ["10", "12"])
    out = write_training_file(examples, 4, tmp_path / f"sub/train{suffix}")
    loaded = load_problems(out)
    assert [(p.id, p.answer) for p in loaded] == [("10", "5"), ("10", "5"), ("12", "6"), ("12", "6")]
    # the training template adds the step-by-step suffix once
    assert loaded[0].prompt == "What is 2+3? Let's think step by step and output the final answer within \\boxed{}."
    assert loaded[0].meta["reward_model"] == {"ground_truth": "5", "style": "rule"}
    assert loaded[2].meta["extra_info"] == {"index": 12, "split": "train"}


def test_write_training_file_rejects_other_suffixes(tmp_path: Path) -> None:
    with pytest.raises(RlvrError, match=r"must end in \.parquet or \.jsonl"):
        write_training_file([_problem("1")], 2, tmp_path / "train.csv")
