"""Problem loaders, templates and 1-shot expansion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import shared_data_or_skip
from oneshot_rlvr.data import Problem, expand_to_batch, load_problems, render_prompt
from oneshot_rlvr.data.templates import TRAIN_SUFFIX
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.tiny import train_tokenizer


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_fields_are_found_by_their_usual_names(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "a.jsonl", [{"problem": "1+1?", "final_answer": ["$2$"], "idx": 7},
                                           {"question": "x?", "answer": 3}])
    ps = load_problems(f)
    assert [(p.id, p.prompt, p.answer) for p in ps] == [("7", "1+1?", "2"), ("1", "x?", "3")]


def test_explicit_fields_and_errors_name_file_and_row(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "b.jsonl", [{"q": "1+1?", "a": "2"}, {"q": "2+2?", "a": " "}])
    with pytest.raises(RlvrError, match=r"b.jsonl: row 2 has a missing or empty answer"):
        load_problems(f, question_field="q", answer_field="a")
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"question": "ok", "answer": "1"}\n{not json\n')
    with pytest.raises(RlvrError, match=r"c.jsonl: line 2 is not valid JSON"):
        load_problems(bad)
    with pytest.raises(RlvrError, match="no such file"):
        load_problems(tmp_path / "missing.jsonl")


def test_verl_parquet_schema(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"data_source": "deepscaler", "prompt": [{"role": "user", "content": "Q" + TRAIN_SUFFIX}],
             "ability": "math", "reward_model": {"ground_truth": "12.8", "style": "rule"},
             "extra_info": {"index": 124, "split": "train"}}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (p,) = load_problems(tmp_path / "t.parquet")
    assert (p.id, p.answer, p.source) == ("124", "12.8", "deepscaler")


def test_shipped_pi1_file_loads() -> None:
    path = shared_data_or_skip("data/train/one_shot_rlvr/pi1_r128.parquet")
    ps = load_problems(path)
    assert len(ps) == 128 and {p.id for p in ps} == {"124"} and ps[0].answer == "12.8"


# The Qwen2.5-Math evaluation harness's `qwen25-math-cot` input template, copied from its source
# (Qwen2.5-Eval/evaluation/utils.py, PROMPT_TEMPLATES; `{{}}` is str.format's escape for `{}`).
HARNESS_COT = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
    "<|im_start|>user\n{input}<|im_end|>\n"
    "<|im_start|>assistant\n"
)


def test_the_evaluation_prompt_is_the_harness_template_character_for_character() -> None:
    tok = train_tokenizer(["some text 123"] * 3, vocab_size=300)  # (a Qwen-style chat template)
    question = "Find $x$ if $2x + {3} = 7$."  # (braces and dollars pass through untouched)
    assert render_prompt(question, "qwen25-math-cot", tok) == HARNESS_COT.format(input=question)


def test_templates() -> None:
    tok = train_tokenizer(["some text 123"] * 3, vocab_size=300)
    train = render_prompt("What is 1+1?" + TRAIN_SUFFIX, "oneshot-train", tok)
    assert train.count(TRAIN_SUFFIX.strip()) == 1  # never added twice
    assert render_prompt("Q", "plain", None) == "Q\n"
    with pytest.raises(RlvrError, match="unknown prompt template"):
        render_prompt("Q", "fancy", tok)


def test_expand_to_batch() -> None:
    a, b = Problem("1", "a", "1"), Problem("2", "b", "2")
    assert expand_to_batch([a], 4) == [a] * 4
    assert expand_to_batch([a, b], 4) == [a, a, b, b]
    assert expand_to_batch([a, b], 2) == [a, b]
    with pytest.raises(RlvrError, match="do not divide"):
        expand_to_batch([a, b, b], 4)


def test_bad_rows_can_be_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = write_jsonl(tmp_path / "d.jsonl", [{"question": "1+1?", "answer": "2", "id": 0},
                                           {"question": "2+2?", "answer": "", "id": 1},
                                           {"question": "", "answer": "3", "id": 2}])
    with pytest.raises(RlvrError, match=r"row 2 \(id 1\) has a missing or empty answer"):
        load_problems(f)
    ps = load_problems(f, skip_bad_rows=True)
    assert [p.id for p in ps] == ["0"]
    assert "row 2 (id 1), row 3 (id 2)" in caplog.text


def test_dsr_sub_pool_has_one_unlabelled_row() -> None:
    path = shared_data_or_skip("data/train/one_shot_rlvr/dsr_sub.parquet")
    with pytest.raises(RlvrError, match=r"row 266 \(id 265\)"):
        load_problems(path)
    ps = load_problems(path, skip_bad_rows=True)
    assert len(ps) == 1208 and "124" in {p.id for p in ps}
