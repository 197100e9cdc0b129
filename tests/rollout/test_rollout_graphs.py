"""The static-buffer decode step (CUDA graphs on CUDA) against FastLM's own cache: logits, dropped rows, windows."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.decode import decode
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.fast.graphs import GraphDecoder, cuda_graph_recorder
from oneshot_rlvr.rollout.fast.lm import FastLM, prefilled_step
from oneshot_rlvr.rollout.hf import HFRolloutEngine
from oneshot_rlvr.rollout.rows import shared_rows

PROMPTS = ["What is 2+3?", "Solve x + 1 = 4 for x, please.", "What is 2+3?", "12 * 3 ="]


@pytest.fixture(scope="module")
def parts(peaked_model_dir: Path) -> tuple:
    return load_model(str(peaked_model_dir)), load_tokenizer(str(peaked_model_dir))


def _encode(tok: object, prompts: list[str], device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    tok.padding_side = "left"  # type: ignore[attr-defined]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)  # type: ignore[operator]
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def _drive(step: object, ids: torch.Tensor, mask: torch.Tensor, drops: dict[int, list[int]],
           steps: int) -> list[torch.Tensor]:
    """Feed the same tokens (each row's greedy choice of the reference logits) step by step, dropping rows."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -1:]
    feed, attn, out = ids[:, -1:], mask, []
    for t in range(steps):
        logits = step(feed, positions, attn)  # type: ignore[operator]
        out.append(logits.clone())
        feed = logits.argmax(-1, keepdim=True)
        attn = torch.cat([attn, torch.ones_like(feed)], 1)
        positions = positions + 1
        if t in drops:
            keep = torch.tensor(drops[t], device=ids.device)
            step.select(keep)  # type: ignore[attr-defined]
            feed, attn, positions = feed[keep], attn[keep], positions[keep]
    return out


def test_static_step_matches_the_fast_cache_across_windows_and_dropped_rows(parts: tuple) -> None:
    model, tok = parts
    ids, mask = _encode(tok, PROMPTS)
    assert not bool(mask.all())  # padded rows are covered
    lm = FastLM.from_model(model)
    # Drops: 4 -> 3 rows (same batch, one idle slot), 3 -> 2 (moves to a batch of 2), 2 -> 1 (a batch of 1).
    drops = {2: [0, 1, 3], 5: [0, 2], 7: [1]}
    for shared in (shared_rows(PROMPTS, ids), None):
        every_row = shared or (torch.arange(4), torch.arange(4))  # (the reference cache prefilled either way)
        want = _drive(prefilled_step(lm, ids, mask, 12, every_row), ids, mask, drops, 12)
        decoder = GraphDecoder(lm, window=4)  # a new window every 4 positions: several recordings
        got = _drive(decoder.start(ids, mask, 12, shared), ids, mask, drops, 12)
        assert [g.shape for g in got] == [w.shape for w in want] and want[-1].shape[0] == 1
        for t, (g, w) in enumerate(zip(got, want, strict=True)):
            torch.testing.assert_close(g, w, atol=2e-5, rtol=1e-5, msg=f"step {t}")
        assert sorted(decoder._levels) == [(1, 32), (2, 32), (4, 32)]
        # The halved batches live in the first rows of the full batch's buffers: no memory of their own.
        top = decoder._levels[(4, 32)]
        for small in (decoder._levels[(2, 32)], decoder._levels[(1, 32)]):
            assert small.cache.keys[-1].data_ptr() == top.cache.keys[-1].data_ptr()
            assert small.bias.data_ptr() == top.bias.data_ptr()
        windows = {(t // 4 + 1) * 4 for t in range(ids.shape[1] - 1, ids.shape[1] + 11)}
        assert set().union(*(level.steps for level in decoder._levels.values())) == windows and len(windows) >= 3


def test_buffers_are_reused_by_the_next_rollout_without_leftovers(parts: tuple) -> None:
    """A second rollout on the same recordings (other prompts, shorter) gives what a fresh decoder gives."""
    model, tok = parts
    lm = FastLM.from_model(model)
    decoder = GraphDecoder(lm, window=8)
    ids, mask = _encode(tok, PROMPTS)
    _drive(decoder.start(ids, mask, 9, None), ids, mask, {3: [1, 2]}, 9)
    other = ["12 * 3 =", "What is 2+3?", "Solve x + 1 = 4 for x, please.", "45 - 6 ="]
    ids, mask = _encode(tok, other)
    again = _drive(decoder.start(ids, mask, 9, None), ids, mask, {1: [3]}, 9)
    fresh = _drive(GraphDecoder(lm, window=8).start(ids, mask, 9, None), ids, mask, {1: [3]}, 9)
    for a, b in zip(again, fresh, strict=True):
        assert torch.equal(a, b)
    assert len(decoder._levels) == 3  # (4 rows, then 2 and 1 in its first rows)
    decoder.start(ids, mask, 40, None)  # another capacity: the old buffers and recordings are let go
    assert list(decoder._levels) == [(4, -(-(ids.shape[1] + 40) // 8) * 8)]


class _StopByFirstToken:
    """A row processor ending each row after 2 to 8 tokens, the length keyed on its first token."""

    def __init__(self, stop_id: int):
        self.stop_id = stop_id

    def __call__(self, responses: torch.Tensor, done: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        ends = (done > 0) & ((2 + responses[:, 0] % 7) <= done + 1)
        forced = torch.full_like(scores, -1e9)
        forced[:, self.stop_id] = 0
        return torch.where(ends[:, None], forced, scores)


def _fast(parts: tuple, **kw: object) -> FastRolloutEngine:
    model, tok = parts
    return FastRolloutEngine(model, tok, row_processors=[_StopByFirstToken(tok.eos_token_id)],
                             **kw)  # type: ignore[arg-type]


def test_engine_with_static_steps_gives_the_same_tokens(parts: tuple) -> None:
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12)
    plain = _fast(parts, graphs=False, continuous=False).generate(PROMPTS, 4, sampling, seed=3)
    static = _fast(parts, graphs=True, continuous=False)
    assert static._graphs is not None
    out = static.generate(PROMPTS, 4, sampling, seed=3)
    assert torch.equal(out.response_ids, plain.response_ids) and out.texts == plain.texts
    assert len(set(plain.texts)) > 4 and len(set(plain.response_mask.sum(1).tolist())) > 2  # rows end apart


class _CountingRecorder:
    """A Recorder that runs each step eagerly, counting recordings and replays (what CUDA graphs would see)."""

    def __init__(self) -> None:
        self.recorded = 0
        self.replayed = 0

    def __call__(self, fn: object) -> object:
        self.recorded += 1

        def replay() -> torch.Tensor:
            self.replayed += 1
            return fn()  # type: ignore[operator]

        return replay


@pytest.mark.parametrize("check_every", [1, 5])
def test_recorded_continuous_batching_gives_the_eager_tokens(parts: tuple, check_every: int) -> None:
    """Continuous batching through recorded steps (halving sizes, coarse windows, a look every few tokens, the
    buffers kept for the next rollout) samples what the eager loop samples."""
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12)
    prompts = PROMPTS * 6  # 24 prompts x 4: 96 rows through 20 slots, refilled as rows stop
    plain = _fast(parts, graphs=False, max_batch_rows=20).generate(prompts, 4, sampling, seed=3)
    recorder = _CountingRecorder()
    recorded = _fast(parts, graphs=True, recorder=recorder, max_batch_rows=20, check_every=check_every)
    out = recorded.generate(prompts, 4, sampling, seed=3)
    assert out.texts == plain.texts and torch.equal(out.response_mask, plain.response_mask)
    assert len(set(plain.response_mask.sum(1).tolist())) > 3  # rows ended apart: slots were refilled
    assert recorder.replayed > 20 and recorder.recorded <= 4  # sizes 20 then 16 (the floor); one window
    first = recorder.recorded
    again = recorded.generate(prompts, 4, sampling, seed=3)
    assert again.texts == out.texts and recorder.recorded == first  # the next rollout replays the recordings


def test_a_step_past_the_capacity_is_refused(parts: tuple) -> None:
    model, tok = parts
    ids, mask = _encode(tok, PROMPTS[:1])
    step = GraphDecoder(FastLM.from_model(model), window=ids.shape[1] + 2).start(ids, mask, 2, None)
    with pytest.raises(ValueError, match="past the cache"):
        _drive(step, ids, mask, {}, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replays_equal_the_eager_steps(parts: tuple) -> None:
    model, tok = parts
    model = model.to("cuda", torch.bfloat16)
    try:
        lm = FastLM.from_model(model)
        ids, mask = _encode(tok, PROMPTS, "cuda")
        drops = {2: [0, 1, 3], 5: [0, 2], 7: [1]}
        eager = _drive(GraphDecoder(lm, window=4).start(ids, mask, 12, None), ids, mask, drops, 12)
        graphs = GraphDecoder(lm, cuda_graph_recorder(), window=4)
        for _ in range(2):  # the second time from recordings made by the first
            replayed = _drive(graphs.start(ids, mask, 12, None), ids, mask, drops, 12)
            for t, (a, b) in enumerate(zip(replayed, eager, strict=True)):
                assert torch.equal(a, b), f"step {t}"
        greedy = SamplingParams(temperature=0, max_new_tokens=16)
        for continuous in (False, True):
            out = FastRolloutEngine(model, tok, continuous=continuous).generate(PROMPTS, 2, greedy)  # graphs on CUDA
            plain = FastRolloutEngine(model, tok, continuous=continuous, graphs=False).generate(PROMPTS, 2, greedy)
            assert torch.equal(out.response_ids, plain.response_ids)
        hf = HFRolloutEngine(model, tok).generate(PROMPTS, 2, greedy)
        agree = (out.response_ids == hf.response_ids).float().mean().item()
        assert agree > 0.9, agree  # bf16 kernels differ from the Hugging Face forward's; most tokens agree
    finally:
        model.to("cpu", torch.float32)


def test_decode_loop_accepts_the_static_step(parts: tuple) -> None:
    """`decode` with rows stopping at different steps, through the static step, as the engine runs it."""
    model, tok = parts
    ids, mask = _encode(tok, PROMPTS)
    lm = FastLM.from_model(model)
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    stop = [int(x) for x in torch.arange(0, 1024, 7)]  # many stop ids: rows end early, at different steps
    every_row = (torch.arange(4), torch.arange(4))
    want = decode(prefilled_step(lm, ids, mask, 10, every_row), ids, mask, greedy, stop, 0, prefilled=True)
    got = decode(GraphDecoder(lm, window=4).start(ids, mask, 10, None), ids, mask, greedy, stop, 0, prefilled=True)
    assert torch.equal(got, want)


def test_fused_arithmetic_stays_close_and_shares_the_mlp_weights(parts: tuple) -> None:
    """The CUDA variant (one-kernel norms, adds inside the matmuls, the model's own gate and up weights), run on
    the CPU: close to the exact forward, and the trained gate and up weights are used as they change."""
    model, tok = parts
    ids, mask = _encode(tok, PROMPTS)
    policy = copy.deepcopy(model)
    exact, fused = FastLM.from_model(policy), FastLM.from_model(policy, fused=True)
    gate = policy.get_decoder().layers[0].mlp.gate_proj.weight
    assert fused.fused and not exact.fused
    assert fused.layers[0].gate_up is None and fused.layers[0].gate is not None
    assert fused.layers[0].gate.data_ptr() == gate.data_ptr()  # no stacked copy

    def run(lm: FastLM) -> list[torch.Tensor]:
        return _drive(GraphDecoder(lm, window=8).start(ids, mask, 6, None), ids, mask, {2: [1, 3]}, 6)

    for a, b in zip(run(fused), run(exact), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        gate.mul_(1.5)
    moved = FastLM.from_model(policy)
    fused.refresh(policy)  # (nothing to copy for gate and up: they are the model's)
    for a, b in zip(run(fused), run(moved), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(run(moved)[0], run(exact)[0], atol=1e-3)  # the change shows in the logits
