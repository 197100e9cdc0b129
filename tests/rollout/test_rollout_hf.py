"""The Hugging Face rollout engine: shapes, masks, finish reasons, shared prefill, seeding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import SamplingParams, concat_rollouts
from oneshot_rlvr.rollout.hf import HFRolloutEngine

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


def test_rows_are_prompt_major_and_masks_cover_the_stop_token(engine_parts: tuple) -> None:
    model, tok = engine_parts
    out = HFRolloutEngine(model, tok, max_batch_rows=3).generate(PROMPTS, 3, SamplingParams(max_new_tokens=12), seed=0)
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


def test_same_seed_same_samples(engine_parts: tuple) -> None:
    model, tok = engine_parts
    eng = HFRolloutEngine(model, tok)
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
