"""Continuous batching (slots refilled as rows stop) and the per-row random streams behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.streams import row_seed, row_uniforms

PROMPT = "Let p, q be the roots of x^2 - 7x + 3 = 0. Compute p^3 + q^3."


class StopByFirstToken:
    """A row processor: each row stops 2 to 12 tokens in, by its first token (lengths spread, so slots refill)."""

    def __init__(self, stop_id: int):
        self.stop_id = stop_id

    def __call__(self, responses: torch.Tensor, done: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, self.stop_id] = -1e9
        target = 2 + responses[:, 0] % 11
        at_end = (done > 0) & (done + 1 >= target)
        forced = torch.full_like(scores, -1e9)
        forced[:, self.stop_id] = 0
        return torch.where(at_end[:, None], forced, scores)


@pytest.fixture(scope="module")
def parts(peaked_model_dir: Path) -> tuple:
    return load_model(str(peaked_model_dir)), load_tokenizer(str(peaked_model_dir))


def _engine(parts: tuple, rows: int, **kw: object) -> FastRolloutEngine:
    model, tok = parts
    return FastRolloutEngine(model, tok, max_batch_rows=rows, graphs=False,  # type: ignore[arg-type]
                           row_processors=[StopByFirstToken(tok.eos_token_id)], **kw)


def test_samples_do_not_depend_on_the_slot_count(parts: tuple) -> None:
    """float32 on the CPU: 96 rows (12 copies x 8 samples) through 8 slots equal them through 64, bit for bit."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=24)
    few = _engine(parts, 8).generate([PROMPT] * 12, 8, sampling, seed=5)
    many = _engine(parts, 64).generate([PROMPT] * 12, 8, sampling, seed=5)
    assert torch.equal(few.response_ids, many.response_ids) and few.texts == many.texts
    lengths = few.response_mask.sum(1)
    assert len(set(lengths.tolist())) > 4  # rows stopped apart: slots were refilled mid-rollout
    assert len(set(few.texts)) > 40  # and the rows are not one sample repeated
    other = _engine(parts, 8).generate([PROMPT] * 12, 8, sampling, seed=6)
    assert other.texts != few.texts


def test_rows_keep_their_streams_when_split_between_calls(parts: tuple) -> None:
    """Row i draws from (seed, first_row + i): two half calls equal one whole one (data-parallel ranks)."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=16)
    whole = _engine(parts, 16).generate([PROMPT] * 4, 8, sampling, seed=3)
    second = _engine(parts, 16).generate([PROMPT] * 2, 8, sampling, seed=3, first_row=16)
    assert torch.equal(whole.response_ids[16:, : second.response_ids.shape[1]], second.response_ids)
    first = _engine(parts, 16).generate([PROMPT] * 2, 8, sampling, seed=3)
    assert first.texts == whole.texts[:16] and first.texts != second.texts


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_continuous_and_chunked_sample_alike(parts: tuple, temperature: float) -> None:
    """Both loops give each row its own stream: the same tokens (up to rare near-ties of their rounding)."""
    sampling = SamplingParams(temperature=temperature, max_new_tokens=20)
    cont = _engine(parts, 12).generate([PROMPT] * 6, 8, sampling, seed=11)
    chunked = _engine(parts, 12, continuous=False).generate([PROMPT] * 6, 8, sampling, seed=11)
    width = min(cont.response_ids.shape[1], chunked.response_ids.shape[1])
    agree = (cont.response_ids[:, :width] == chunked.response_ids[:, :width]).float().mean().item()
    assert agree > 0.95, agree


def test_many_distinct_prompts_share_slots(parts: tuple) -> None:
    """Distinct prompts (more than one prefill group) through a few slots: greedy tokens as the chunked loop's."""
    model, tok = parts
    prompts = [f"Problem {k}: what is {k} + {2 * k}?" + " think" * (k % 5) for k in range(20)]
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    cont = FastRolloutEngine(model, tok, max_batch_rows=4).generate(prompts, 2, greedy)
    chunked = FastRolloutEngine(model, tok, max_batch_rows=40, continuous=False).generate(prompts, 2, greedy)
    assert cont.texts == chunked.texts
    assert len(set(cont.texts)) > 5
    for i in range(40):  # prompt-major rows, each with its own prompt
        assert prompts[i // 2] in tok.decode(cont.prompt_ids[i][cont.prompt_mask[i].bool()])


def test_row_streams_depend_on_seed_and_row_only() -> None:
    a = row_uniforms(7, [0, 1, 2, 3], 5)
    assert torch.equal(row_uniforms(7, [2, 3], 5), a[2:])  # a row's draws, whichever rows come with it
    assert not torch.equal(a[0], a[1]) and not torch.equal(row_uniforms(8, [0], 5)[0], a[0])
    assert ((a >= 0) & (a < 1)).all() and a.dtype == torch.float64
    assert len({row_seed(s, r) for s in range(50) for r in range(50)}) == 2500


def test_rows_that_run_to_the_cap_leave_idle_slots_inside_the_cache(parts: tuple) -> None:
    """Rows cut at max_new_tokens next to rows that stop early: the batch shrinks around slots that stand at
    the cache's last position."""
    model, tok = parts
    sampling = SamplingParams(temperature=1.0, max_new_tokens=10)
    engine = FastRolloutEngine(model, tok, max_batch_rows=20)
    out = engine.generate([PROMPT, "1 + 1 ="], 12, sampling, seed=1)
    assert "length" in out.finish_reasons and out.response_ids.shape[1] == 10


PREAMBLE = "Solve the problem step by step, then give the final answer in a box at the end. Problem: "


def test_prompts_sharing_a_beginning_prefill_it_once(parts: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct prompts of different lengths behind one long shared beginning (a system prompt): it is prefilled
    once and copied, and the greedy answers are the chunked loop's (which prefills every prompt whole)."""
    from oneshot_rlvr.rollout.fast import lm as fastpath
    from oneshot_rlvr.rollout.fast import slots

    model, tok = parts
    prompts = [PREAMBLE + f"what is {k} + {2 * k}?" + " Think." * (k % 4) for k in range(24)]
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    widths: list[int] = []
    forward = fastpath.FastLM.forward

    def counting(self: fastpath.FastLM, ids: torch.Tensor, *args: object, **kw: object) -> torch.Tensor:
        widths.append(ids.shape[0] * ids.shape[1])
        return forward(self, ids, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fastpath.FastLM, "forward", counting)
    cont = FastRolloutEngine(model, tok, max_batch_rows=5).generate(prompts, 1, greedy)
    store_tokens = sum(widths)
    chunked = FastRolloutEngine(model, tok, max_batch_rows=24, continuous=False).generate(prompts, 1, greedy)
    assert cont.texts == chunked.texts and len(set(cont.texts)) > 3
    shared = len(tok(PREAMBLE, add_special_tokens=False).input_ids)
    whole = sum(len(tok(p, add_special_tokens=False).input_ids) - 1 for p in prompts)
    assert shared >= slots.MIN_SHARED and store_tokens < whole - 10 * shared  # the beginning ran once, not 24 times


def test_distinct_prompts_sample_the_same_through_any_slot_count(parts: tuple) -> None:
    """float32 on the CPU, distinct prompts with a shared beginning: 3 slots and 40 give the same samples."""
    prompts = [PREAMBLE + f"what is {k} times {k + 3}?" + " Be careful." * (k % 3) for k in range(10)]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=20)
    few = _engine(parts, 3).generate(prompts, 4, sampling, seed=2)
    many = _engine(parts, 40).generate(prompts, 4, sampling, seed=2)
    assert torch.equal(few.response_ids, many.response_ids) and len(set(few.texts)) > 20


@pytest.mark.parametrize(("dtype", "least"), [(torch.float32, 16), (torch.bfloat16, 1)])
def test_the_tail_keeps_16_rows_in_float32_only(parts: tuple, monkeypatch: pytest.MonkeyPatch,
                                                dtype: torch.dtype, least: int) -> None:
    """float32 keeps 16 rows a step (its rounding then does not depend on the batch); bf16 promises no such
    thing, so its tail computes only the rows still decoding."""
    from oneshot_rlvr.rollout.fast import slots

    sizes: list[int] = []
    step = slots.slot_step

    def counting(lm: object, feed: torch.Tensor, *args: object) -> torch.Tensor:
        sizes.append(feed.shape[0])
        return step(lm, feed, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(slots, "slot_step", counting)
    model, tok = parts
    engine = FastRolloutEngine(model, tok, max_batch_rows=20, dtype=dtype,
                               row_processors=[StopByFirstToken(tok.eos_token_id)])
    engine.generate([PROMPT] * 3, 8, SamplingParams(temperature=1.0, max_new_tokens=16), seed=4)
    assert sizes[0] == 20 and min(sizes) == least
