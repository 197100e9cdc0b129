"""evaluate_problems: records and metrics from a scripted engine; batched greedy equals one-at-a-time
on a tiny model whose outputs depend on the prompt; seeded sampling is reproducible; outputs; table."""

from __future__ import annotations

import json

import pytest
import torch

from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.data.templates import render_prompt
from oneshot_rlvr.eval.choice import choice_problems
from oneshot_rlvr.eval.run import evaluate_problems, format_table, write_outputs
from oneshot_rlvr.rollout.base import SamplingParams
from oneshot_rlvr.rollout.scripted import ScriptedEngine

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12)


def test_choice_records_and_metrics_from_scripted_responses():
    rows = [{"id": f"q{i}", "question": {"stem": f"Question {i}?", "choices": [
        {"label": "A", "text": "yes"}, {"label": "B", "text": "no"}]}, "answerKey": "ABA"[i]} for i in range(3)]
    problems = choice_problems(rows, where="t", source="arc")
    engine = ScriptedEngine({
        "Question 0?": [r"\boxed{A}", "The answer is (A)"],             # right, right (1 strict)
        "Question 1?": [r"Wait, \boxed{A}", "Let me verify: B ..."],   # wrong, right; one truncated
        "Question 2?": ["no idea", r"\boxed{B}"],                        # B is wrong for key A
    }, max_batch_rows=4)
    metrics, records = evaluate_problems(
        engine, problems, template="qwen25-math-cot", tokenizer=None,
        sampling=SamplingParams(temperature=0.6, max_new_tokens=8), n=2, seed=5, benchmark="arc_easy",
        kind="choice", chunk_rows=4,
    )
    # 4 rows per call at n=2 -> 2 problems per call; one seed, each call's rows numbered from where it starts.
    assert engine.calls == [(2, 2, 5), (1, 2, 5)] and engine.first_rows == [0, 4]
    assert [(r["problem_id"], r["sample"]) for r in records] == [
        ("q0", 0), ("q0", 1), ("q1", 0), ("q1", 1), ("q2", 0), ("q2", 1)]
    assert [r["correct"] for r in records] == [True, True, False, True, False, False]
    assert [r["strict_correct"] for r in records] == [True, False, False, False, False, False]
    assert [r["extracted"] for r in records] == ["A", "A", "A", "B", None, "B"]
    assert records[2]["reflection"] == {"wait": 1} and records[3]["reflection"] == {"verify": 1}
    assert records[3]["finish_reason"] == "length" and records[3]["tokens"] == 5
    assert records[0]["prompt"] == render_prompt(problems[0].prompt, "qwen25-math-cot", None)
    assert records[0]["gold"] == "A" and records[0]["benchmark"] == "arc_easy"
    assert metrics["accuracy"] == pytest.approx(3 / 6)
    assert metrics["strict_accuracy"] == pytest.approx(1 / 6)
    assert metrics["avg@2"] == pytest.approx(3 / 6)
    assert metrics["pass@2"] == pytest.approx(2 / 3)  # q0 and q1 have a right answer among 2
    assert metrics["format_rate"] == pytest.approx(3 / 6)
    assert metrics["truncation_rate"] == pytest.approx(1 / 6)
    assert metrics["mean_response_tokens"] == pytest.approx((2 + 5 + 3 + 5 + 3 + 2) / 6)


def test_greedy_with_n_above_one_samples_once():
    problems = [Problem("p", "Question 0?", "4")]
    engine = ScriptedEngine({"Question 0?": [r"\boxed{4}"]})
    metrics, records = evaluate_problems(engine, problems, template="plain", tokenizer=None, sampling=GREEDY,
                                         n=8, kind="choice")
    assert engine.calls == [(1, 1, None)] and len(records) == 1 and metrics["samples_per_problem"] == 1


def test_math_records_use_the_lenient_and_the_strict_grader():
    problems = [Problem("a", "What is 6 * 7?", "42"), Problem("b", "Half of 1?", r"\frac{1}{2}")]
    engine = ScriptedEngine({
        "6 * 7": [r"so \boxed{42}", "The answer is 42", r"\boxed{41}", "I give up"],
        "Half": [r"\boxed{0.5}", r"\boxed{\frac{1}{2}}", r"\boxed{\frac12}", "1/3"],
    })
    metrics, records = evaluate_problems(engine, problems, template="qwen25-math-cot", tokenizer=None,
                                         sampling=SamplingParams(temperature=1.0), n=4, benchmark="custom")
    assert [r["correct"] for r in records[:4]] == [True, True, False, False]
    assert [r["strict_correct"] for r in records[:4]] == [True, False, False, False]
    assert [r["correct"] for r in records[4:]] == [True, True, True, False]
    assert records[0]["extracted"] == "42" and records[1]["extracted"] == "42"
    assert metrics["accuracy"] == pytest.approx(5 / 8)
    assert metrics["pass@4"] == pytest.approx(1.0)


# --- a real (tiny) model ------------------------------------------------------------------------

QUESTIONS = ["What is 12 + 30?", "Solve 3x + 4 = 19 for x, then add seven to it.", "Compute 7 * 8.",
             "What is the remainder of 17 divided by 5?", "x", "Let a=2 and b=3. Find a^b + b^a.", "1+1",
             "Find 4/3 + 1/3."]


@pytest.fixture(scope="module")
def spread_model(tiny_model_dir):
    """The tiny architecture with large random weights: greedy outputs then differ by prompt."""
    from transformers import AutoConfig, Qwen2ForCausalLM

    from oneshot_rlvr.models.load import load_tokenizer

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    return model, load_tokenizer(str(tiny_model_dir))


def _engine(model, tok, rows):
    from oneshot_rlvr.rollout.engine import make_engine

    return make_engine(model, tok, batch_rows=rows)


def test_batched_greedy_equals_one_at_a_time_with_padding_and_stops(spread_model):
    model, tok = spread_model
    prompts = [render_prompt(q, "qwen25-math-cot", tok) for q in QUESTIONS]
    assert len({len(tok(p).input_ids) for p in prompts}) > 3  # different lengths: left padding matters
    first = _engine(model, tok, 1).generate(prompts[:1], 1, GREEDY)
    # Make a token the first prompt emits at step 4 a stop token, so some rows stop early, others not.
    stop = int(first.response_ids[0, 3])
    eos = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [*(eos if isinstance(eos, list) else [eos]), stop]
    try:
        one = [_engine(model, tok, 1).generate([p], 1, GREEDY) for p in prompts]
        batched = _engine(model, tok, 8).generate(prompts, 1, GREEDY)
    finally:
        model.generation_config.eos_token_id = eos
    assert batched.texts == [o.texts[0] for o in one]
    assert batched.finish_reasons == [o.finish_reasons[0] for o in one]
    assert batched.response_lengths.tolist() == [int(o.response_lengths[0]) for o in one]
    assert batched.finish_reasons[0] == "eos" and "length" in batched.finish_reasons
    assert len(set(batched.texts)) >= 6  # not one degenerate output for every prompt


def test_same_seed_same_records_on_cpu(spread_model):
    model, tok = spread_model
    problems = [Problem(str(i), q, "42") for i, q in enumerate(QUESTIONS[:3])]
    sampling = SamplingParams(temperature=0.8, max_new_tokens=8)

    def run(seed, rows):
        return evaluate_problems(_engine(model, tok, rows), problems, template="qwen25-math-cot", tokenizer=tok,
                                 sampling=sampling, n=3, seed=seed, kind="choice")[1]

    a, b, c = run(7, 4), run(7, 4), run(8, 4)
    assert a == b
    assert [r["response"] for r in a] != [r["response"] for r in c]
    assert len({r["response"] for r in a}) > 1


def test_sampled_records_do_not_depend_on_the_chunking(spread_model):
    """Response i draws from the stream of (seed, i): two problems a call, or all four in one, through 4 slots or
    12, give the same records."""
    model, tok = spread_model
    problems = [Problem(str(i), q, "42") for i, q in enumerate(QUESTIONS[:4])]
    sampling = SamplingParams(temperature=0.8, max_new_tokens=8)

    def run(rows, chunk_rows):
        return evaluate_problems(_engine(model, tok, rows), problems, template="qwen25-math-cot", tokenizer=tok,
                                 sampling=sampling, n=3, seed=7, kind="choice", chunk_rows=chunk_rows)[1]

    whole = run(12, None)
    assert run(4, 6) == whole and len({r["response"] for r in whole}) > 6


def test_batched_greedy_records_equal_one_at_a_time(spread_model):
    model, tok = spread_model
    problems = [Problem(str(i), q, "42") for i, q in enumerate(QUESTIONS[:5])]
    kw = dict(template="qwen25-math-cot", tokenizer=tok, sampling=SamplingParams(temperature=0, max_new_tokens=6),
              benchmark="math500")
    m1, one = evaluate_problems(_engine(model, tok, 1), problems, **kw)
    m5, batched = evaluate_problems(_engine(model, tok, 5), problems, **kw)
    assert one == batched and m1 == m5
    assert len({r["response"] for r in one}) == 5


def test_outputs_and_table(tmp_path):
    bench = {"accuracy": 0.5, "label": "MATH500"}
    results = {"benchmarks": {"math500": bench, "aime24": {"accuracy": 0.125}, "arc_easy": {"accuracy": 1.0}},
               "average": {"accuracy": None, "complete": False}}
    records = [{"benchmark": "math500", "response": "é \\boxed{1}"}]
    out = write_outputs(tmp_path / "o", results, records)
    assert json.loads((out / "results.json").read_text(encoding="utf-8")) == results
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == records
    table = format_table([("model-x", results)]).splitlines()
    assert table[0].split() == ["MATH500", "AIME24", "AIME25", "AMC23", "Minerva", "Olympiad", "Avg", "ARC-E"]
    assert table[1].split() == ["model-x", "50.0", "12.5", "-", "-", "-", "-", "-", "100.0"]
