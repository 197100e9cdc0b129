"""FastLM against the Hugging Face forward it replaces: logits, KV cache, padding, greedy tokens."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.models.precision import native_bf16
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.engine import make_engine
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.fast.lm import FastLM, unsupported_reason
from oneshot_rlvr.rollout.hf import HFRolloutEngine

PROMPTS = ["What is 2+3?", "What is 2+3?", "Solve x + 1 = 4 for x, please.", "12 * 3 ="]


@pytest.fixture(scope="module")
def parts(peaked_model_dir: Path) -> tuple:
    return load_model(str(peaked_model_dir)), load_tokenizer(str(peaked_model_dir))


def _hf_last_logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]


def test_prefill_then_decode_matches_the_hf_forward_with_left_padding(parts: tuple) -> None:
    model, tok = parts
    tok.padding_side = "left"
    enc = tok(PROMPTS[1:], return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc.input_ids, enc.attention_mask
    assert not bool(mask.all())  # the check covers padded rows
    lm = FastLM.from_model(model)
    cache = lm.new_cache(ids.shape[0], ids.shape[1] + 4)
    fast = lm.forward(ids, (mask.cumsum(-1) - 1).clamp(min=0), cache, mask)
    torch.testing.assert_close(fast, _hf_last_logits(model, ids, mask), atol=1e-4, rtol=1e-4)
    # Three decode steps of one token each, through the cache.
    for t in range(3):
        nxt = fast.argmax(-1, keepdim=True)
        ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
        fast = lm.forward(nxt, (mask.cumsum(-1) - 1).clamp(min=0)[:, -1:], cache, mask)
        torch.testing.assert_close(fast, _hf_last_logits(model, ids, mask), atol=1e-4, rtol=1e-4, msg=f"step {t}")


def test_dropping_rows_keeps_the_others_exact(parts: tuple) -> None:
    model, tok = parts
    enc = tok(["12 * 3 =", "45 - 6 ="], return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc.input_ids, enc.attention_mask
    lm = FastLM.from_model(model)
    cache = lm.new_cache(2, ids.shape[1] + 2)
    first = lm.forward(ids, (mask.cumsum(-1) - 1).clamp(min=0), cache, mask)
    cache.select(torch.tensor([1]))
    nxt = first[1:].argmax(-1, keepdim=True)
    ids1, mask1 = torch.cat([ids[1:], nxt], 1), torch.cat([mask[1:], torch.ones_like(nxt)], 1)
    out = lm.forward(nxt, (mask1.cumsum(-1) - 1).clamp(min=0)[:, -1:], cache, mask1)
    torch.testing.assert_close(out, _hf_last_logits(model, ids1, mask1), atol=1e-4, rtol=1e-4)


def test_engine_gives_the_hf_greedy_tokens_in_either_loop(parts: tuple) -> None:
    model, tok = parts
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    hf = HFRolloutEngine(model, tok).generate(PROMPTS, 2, greedy)
    for continuous in (True, False):
        fast = FastRolloutEngine(model, tok, continuous=continuous).generate(PROMPTS, 2, greedy)
        assert torch.equal(fast.response_ids, hf.response_ids) and fast.texts == hf.texts
    assert len(set(hf.texts)) > 1  # different prompts, different answers: the comparison can fail


def test_bf16_copy_tracks_the_trained_weights_after_sync(parts: tuple) -> None:
    model, tok = parts
    policy = copy.deepcopy(model)
    engine = FastRolloutEngine(policy, tok, dtype=torch.bfloat16)
    lm = engine.lm
    assert lm is not None and lm.layers[0].qkv.dtype == torch.bfloat16
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    engine.sync(policy)
    assert engine.lm is lm  # refreshed in place, not rebuilt
    q = policy.get_decoder().layers[0].self_attn.q_proj.weight
    torch.testing.assert_close(lm.layers[0].qkv[: q.shape[0]].float(), q.detach().bfloat16().float())
    torch.testing.assert_close(lm.head.float(), policy.get_output_embeddings().weight.detach().bfloat16().float())


def test_rotary_tables_equal_the_hf_module_bit_for_bit(parts: tuple) -> None:
    from oneshot_rlvr.rollout.fast.lm import _rotary

    model, _ = parts
    rotary = model.get_decoder().rotary_emb
    lm = FastLM.from_model(model)
    positions = torch.tensor([[0, 1, 2, 7], [3, 4, 500, 4095]])
    for dtype in (torch.float32, torch.bfloat16):
        mine = _rotary(lm.inv_freq, lm.rope_scale, positions, dtype)
        theirs = rotary(torch.zeros(1, dtype=dtype), positions)
        for a, b in zip(mine, theirs, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_models_it_does_not_cover_are_named(parts: tuple) -> None:
    model, tok = parts
    assert unsupported_reason(model) is None
    other = copy.deepcopy(model)
    other.get_decoder().rotary_emb.rope_type = "dynamic"
    assert "dynamic" in str(unsupported_reason(other))  # its frequencies change with the length
    other = copy.deepcopy(model)
    other.config.model_type = "gpt2"
    assert "gpt2" in str(unsupported_reason(other))
    with pytest.raises(ValueError, match="gpt2"):
        FastRolloutEngine(other, tok)
    # make_engine falls back to the Hugging Face forward instead of failing.
    engine = make_engine(other, tok)
    assert isinstance(engine, HFRolloutEngine) and isinstance(make_engine(model, tok), FastRolloutEngine)
    out = engine.generate(PROMPTS[:1], 1, SamplingParams(temperature=0, max_new_tokens=4))
    assert len(out) == 1


NATIVE_BF16 = native_bf16(torch.device("cpu"))


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 matmul (AVX2-only), so the prepacked bf16 "
                    "path is never taken here; the fallback it takes instead is tested below, on every CPU")
def test_prepacked_bf16_weights_are_as_accurate_as_the_plain_matmuls_and_follow_refresh(
    parts: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepacked path fuses the residual adds, the activation and the gate product into its matmuls, so it
    rounds differently from the plain bf16 forward: both are held to the float32 forward, and the fused one must
    be as close to it as the plain one (a wrong or stale fused op would be far off)."""
    from oneshot_rlvr.rollout.fast import lm as fastpath

    model, tok = parts
    policy = copy.deepcopy(model)
    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc.input_ids, enc.attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)

    def run(lm: FastLM) -> list[torch.Tensor]:
        cache = lm.new_cache(ids.shape[0], ids.shape[1] + 2)
        first = lm.forward(ids, positions, cache, mask)  # prefill: many rows per matmul
        nxt = torch.tensor([[3], [5], [7], [11]])
        step_mask = torch.cat([mask, torch.ones_like(nxt)], 1)
        return [t.float() for t in (first, lm.forward(nxt, positions[:, -1:] + 1, cache, step_mask))]  # one row each

    def assert_as_accurate(fused: list[torch.Tensor], plain: list[torch.Tensor], exact: list[torch.Tensor]) -> None:
        for a, b, ref in zip(fused, plain, exact, strict=True):
            err, base = (a - ref).abs(), (b - ref).abs()
            assert float(err.mean()) <= 1.25 * float(base.mean()) + 1e-6, (float(err.mean()), float(base.mean()))
            assert float(err.max()) <= 2 * float(base.max()) + 1e-6, (float(err.max()), float(base.max()))

    packed = FastLM.from_model(policy, torch.bfloat16)
    assert set(packed.layers[0].packed) == {"qkv", "o", "gate", "up", "down"} and packed.head_packed is not None
    exact = FastLM.from_model(policy, torch.float32)
    monkeypatch.setattr(fastpath, "_pack", lambda weight: None)
    plain = FastLM.from_model(policy, torch.bfloat16)
    assert not plain.layers[0].packed
    assert_as_accurate(run(packed), run(plain), run(exact))
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    monkeypatch.undo()
    before = run(packed)
    packed.refresh(policy)
    monkeypatch.setattr(fastpath, "_pack", lambda weight: None)
    plain.refresh(policy)
    exact.refresh(policy)
    after = run(packed)
    assert not torch.allclose(before[0], after[0], atol=2e-2)  # the weights moved: stale packs would show
    assert_as_accurate(after, run(plain), run(exact))


@pytest.mark.parametrize("why", ["no native bf16", "prepack=False"])
def test_the_plain_bf16_path_is_taken_without_native_bf16_or_packing_on_any_cpu(
    parts: tuple, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """The choice a CPU without native bf16 makes, forced on every CPU: no oneDNN packs, before or after a
    refresh, and the forward is the plain bf16 matmuls' bit for bit (the reference built with packing off)."""
    from oneshot_rlvr.rollout.fast import lm as fastpath

    model, tok = parts
    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc.input_ids, enc.attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    reference = FastLM.from_model(model, torch.bfloat16, prepack=False)
    if why == "no native bf16":
        monkeypatch.setattr(fastpath, "native_bf16", lambda device: False)
        lm = FastLM.from_model(model, torch.bfloat16)
    else:
        lm = FastLM.from_model(model, torch.bfloat16, prepack=False)
    lm.refresh(model)
    assert lm.head_packed is None and all(not layer.packed for layer in lm.layers)

    def run(m: FastLM) -> torch.Tensor:
        return m.forward(ids, positions, m.new_cache(ids.shape[0], ids.shape[1] + 1), mask)

    out = run(lm)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, run(reference), atol=0, rtol=0)
