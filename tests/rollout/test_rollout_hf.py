"""The rollout engines (the Hugging Face forward, and the fast path where it applies): shapes, masks, finish
reasons, shared prefill, seeding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import SamplingParams, concat_rollouts
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.hf import HFRolloutEngine

ENGINES = pytest.mark.parametrize("engine_type", [HFRolloutEngine, FastRolloutEngine], ids=["hf", "fast"])
PROMPTS = ["What is 2+3?", "What is 2+3?", "Solve x + 1 = 4 for x, please.", "12 * 3 ="]


@pytest.fixture(scope="module")
def engine_parts(peaked_model_dir: Path) -> tuple:
    return load_model(str(peaked_model_dir)), load_tokenizer(str(peaked_model_dir))


def test_shared_prefill_gives_the_same_greedy_tokens(engine_parts: tuple) -> None:
    model, tok = engine_parts
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    shared = HFRolloutEngine(model, tok, share_prefill=True).generate(PROMPTS, 2, greedy)
    plain = HFRolloutEngine(model, tok, share_prefill=False).generate(PROMPTS, 2, greedy)
    assert torch.equal(shared.response_ids, plain.response_ids)
    assert shared.texts == plain.texts
    # The check means something only if different prompts give different answers.
    assert len({shared.texts[0], shared.texts[4], shared.texts[6]}) > 1


@ENGINES
def test_rows_are_prompt_major_and_masks_cover_the_stop_token(engine_parts: tuple, engine_type: type) -> None:
    model, tok = engine_parts
    out = engine_type(model, tok, max_batch_rows=3).generate(PROMPTS, 3, SamplingParams(max_new_tokens=12), seed=0)
    assert len(out) == 12 and out.n == 3
    assert out.prompt_ids.shape[0] == out.response_ids.shape[0] == 12
    for i in range(12):
        # Row b * G + g holds prompt b: its prompt tokens decode back to that prompt.
        prompt_tokens = out.prompt_ids[i][out.prompt_mask[i].bool()]
        assert PROMPTS[i // 3] in tok.decode(prompt_tokens)
        length = int(out.response_mask[i].sum())
        assert out.response_mask[i, :length].all() and not out.response_mask[i, length:].any()
        last = int(out.response_ids[i, length - 1])
        if out.finish_reasons[i] == "eos":
            assert last == tok.eos_token_id
        else:
            assert length == 12 and out.finish_reasons[i] == "length"
    full = out.full_response_mask
    assert full.shape == out.input_ids.shape and int(full.sum()) == int(out.response_mask.sum())


@ENGINES
def test_same_seed_same_samples(engine_parts: tuple, engine_type: type) -> None:
    model, tok = engine_parts
    eng = engine_type(model, tok)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8)
    a, b = eng.generate(PROMPTS, 2, sampling, seed=7), eng.generate(PROMPTS, 2, sampling, seed=7)
    c = eng.generate(PROMPTS, 2, sampling, seed=8)
    assert a.texts == b.texts and a.texts != c.texts


def test_concat_repads_prompts_left_and_responses_right(engine_parts: tuple) -> None:
    model, tok = engine_parts
    eng = HFRolloutEngine(model, tok)
    greedy = SamplingParams(temperature=0, max_new_tokens=6)
    a, b = eng.generate(PROMPTS[:1], 2, greedy), eng.generate(PROMPTS[2:3], 2, greedy)
    both = concat_rollouts([a, b], pad_id=tok.pad_token_id)
    assert both.texts == a.texts + b.texts
    assert both.prompt_mask[:, -1].all()  # left padding: every prompt ends in the last column
    assert torch.equal(both.response_mask.sum(1), torch.cat([a.response_mask.sum(1), b.response_mask.sum(1)]))


@ENGINES
@pytest.mark.parametrize("continuous", [True, False])
def test_decode_loop_matches_generate_with_early_stops(engine_parts: tuple, engine_type: type,
                                                       continuous: bool) -> None:
    model, tok = engine_parts
    greedy = SamplingParams(temperature=0, max_new_tokens=16)
    probe = HFRolloutEngine(model, tok, use_generate=True).generate(PROMPTS, 1, greedy)
    # Make a token that some rows emit early a stop token: rows then finish at different steps.
    early = int(probe.response_ids[0, 3])
    ours_engine = (FastRolloutEngine(model, tok, continuous=continuous) if engine_type is FastRolloutEngine
                   else HFRolloutEngine(model, tok))
    engines = [ours_engine, HFRolloutEngine(model, tok, use_generate=True)]
    for eng in engines:
        eng.stop_ids = sorted({*eng.stop_ids, early})
    ours, reference = (eng.generate(PROMPTS, 2, greedy) for eng in engines)
    assert "eos" in ours.finish_reasons and "length" in ours.finish_reasons
    assert ours.finish_reasons == reference.finish_reasons
    assert torch.equal(ours.response_mask, reference.response_mask)
    assert torch.equal(ours.response_ids * ours.response_mask, reference.response_ids * reference.response_mask)


def test_sampling_filters() -> None:
    from oneshot_rlvr.rollout.decode import sample_next

    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0]]).repeat(2000, 1)
    torch.manual_seed(0)
    top1 = sample_next(scores, SamplingParams(temperature=1.0, top_k=1))
    assert (top1 == 3).all()
    top2 = sample_next(scores, SamplingParams(temperature=1.0, top_k=2))
    assert set(top2.tolist()) == {2, 3}
    # softmax([0,1,2,3]) = [.032, .087, .237, .644]: top_p 0.7 keeps {3, 2}, top_p 0.5 keeps {3}.
    assert set(sample_next(scores, SamplingParams(temperature=1.0, top_p=0.7)).tolist()) == {2, 3}
    assert set(sample_next(scores, SamplingParams(temperature=1.0, top_p=0.5)).tolist()) == {3}
    assert (sample_next(scores, SamplingParams(temperature=0.0)) == 3).all()
    low = sample_next(scores, SamplingParams(temperature=0.05))
    assert (low == 3).float().mean() > 0.99


def test_bf16_rollout_copy_follows_every_sync(peaked_model_dir: Path) -> None:
    model = load_model(str(peaked_model_dir))
    tok = load_tokenizer(str(peaked_model_dir))
    eng = HFRolloutEngine(model, tok, dtype=torch.bfloat16)  # the Hugging Face forward's copy
    assert next(eng.model.parameters()).dtype == torch.bfloat16 and eng.model is not model
    copy_before = eng.model
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    eng.sync(model)
    assert eng.model is copy_before  # refreshed in place, not re-copied
    for mine, theirs in zip(eng.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, theirs.to(torch.bfloat16))
    out = eng.generate(PROMPTS[:2], 2, SamplingParams(temperature=0, max_new_tokens=5))
    assert len(out) == 4


@ENGINES
def test_a_right_padding_tokenizer_is_still_left_padded(engine_parts: tuple, engine_type: type) -> None:
    model, tok = engine_parts
    greedy = SamplingParams(temperature=0, max_new_tokens=6)
    expected = engine_type(model, tok).generate(PROMPTS, 1, greedy).texts
    tok.padding_side = "right"
    assert engine_type(model, tok).generate(PROMPTS, 1, greedy).texts == expected


def test_sampling_draws_each_token_with_its_probability() -> None:
    from oneshot_rlvr.rollout.decode import sample_next

    # softmax of [0, 1, 2, 3, -inf]: the last token has probability 0 and must never come out.
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, float("-inf")]]).repeat(100_000, 1)
    torch.manual_seed(0)
    counts = torch.bincount(sample_next(scores, SamplingParams(temperature=1.0)), minlength=5).double()
    expected = torch.tensor([0.0, 1.0, 2.0, 3.0]).softmax(-1).double()
    assert counts[4] == 0
    # 100k draws: each frequency within 4 standard errors of its probability.
    stderr = (expected * (1 - expected) / 100_000).sqrt()
    assert ((counts[:4] / 100_000 - expected).abs() < 4 * stderr).all()


@pytest.mark.parametrize("every", [3, 16])
@pytest.mark.parametrize("spacing", [8, 11])  # (with every 8th token a stop, all rows stop before the limit)
def test_looking_at_stopped_rows_every_few_tokens_gives_the_same_greedy_tokens(engine_parts: tuple, every: int,
                                                                              spacing: int) -> None:
    """Between looks (the default on CUDA) stopped rows stay in the batch writing padding: the responses are the
    ones a look at every token gives."""
    from oneshot_rlvr.rollout.decode import decode
    from oneshot_rlvr.rollout.fast.lm import FastLM, prefilled_step

    model, tok = engine_parts
    tok.padding_side = "left"
    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc.input_ids, enc.attention_mask
    lm, greedy = FastLM.from_model(model), SamplingParams(temperature=0, max_new_tokens=20)
    every_row = (torch.arange(4), torch.arange(4))
    stops = [int(x) for x in torch.arange(0, 1024, spacing)]  # rows stop early, at different steps
    runs = [decode(prefilled_step(lm, ids, mask, 20, every_row), ids, mask, greedy, stops, 0, prefilled=True,
                   check_every=k) for k in (1, every)]
    assert torch.equal(runs[0], runs[1])
    is_stop = torch.isin(runs[0], torch.tensor(stops))
    lengths = torch.where(is_stop.any(1), is_stop.int().argmax(1) + 1, runs[0].shape[1])
    assert len(set(lengths.tolist())) > 2 and runs[0].shape[1] == int(lengths.max())
    assert bool(is_stop.any(1).all()) == (spacing == 8) and (runs[0].shape[1] < 20) == (spacing == 8)


@pytest.mark.parametrize("every", [1, 4])
def test_scores_with_nothing_to_sample_raise_with_or_without_looks(engine_parts: tuple, every: int) -> None:
    from oneshot_rlvr.rollout.decode import decode
    from oneshot_rlvr.rollout.fast.lm import FastLM, FastStep

    model, tok = engine_parts
    enc = tok(["12 * 3 ="], return_tensors="pt", add_special_tokens=False)
    lm = FastLM.from_model(model)
    step = FastStep(lm, lm.new_cache(1, enc.input_ids.shape[1] + 8))
    nan_at_two = [lambda seq, s: s.fill_(float("nan")) if seq.shape[1] > enc.input_ids.shape[1] + 1 else s]
    with pytest.raises(RuntimeError, match="probability tensor"):
        decode(step, enc.input_ids, enc.attention_mask, SamplingParams(temperature=1.0, max_new_tokens=8), [1023],
               0, processors=nan_at_two, check_every=every)
