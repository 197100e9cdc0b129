"""Chunked token log-probs against the naive full-logits computation, generate's own scores, and memory."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from oneshot_rlvr.algo import entropy_from_logits, response_logprobs, token_logprobs
from oneshot_rlvr.errors import RlvrError

F64 = torch.float64


def sequence_logprobs_naive(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The textbook computation: full (B, T, V) logits, log_softmax, gather, shift by one."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    logp_all = torch.log_softmax(logits[:, :-1], dim=-1)
    logp = logp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    entropy = entropy_from_logits(logits[:, :-1])
    zero = torch.zeros_like(logp[:, :1])
    keep = response_mask.bool()
    return (
        torch.where(keep, torch.cat([zero, logp], dim=1), 0.0),
        torch.where(keep, torch.cat([zero, entropy], dim=1), 0.0),
    )


def load(model_dir: Path, dtype: torch.dtype = F64) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)


def padded_batch(vocab: int, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three rows: prompts of 3, 5, 2 tokens left-padded; responses of 4, 1, 6 tokens right-padded."""
    gen = torch.Generator().manual_seed(0)
    prompt_lens, response_lens = [3, 5, 2], [4, 1, 6]
    width_p, width_r = max(prompt_lens), max(response_lens)
    ids = torch.full((3, width_p + width_r), pad)
    attention = torch.zeros_like(ids)
    response = torch.zeros_like(ids)
    for row, (p, r) in enumerate(zip(prompt_lens, response_lens, strict=True)):
        ids[row, width_p - p : width_p + r] = torch.randint(0, vocab, (p + r,), generator=gen)
        attention[row, width_p - p : width_p + r] = 1
        response[row, width_p : width_p + r] = 1
    return ids, attention, response


@pytest.fixture(scope="module")
def model64(tiny_model_dir: Path) -> Any:
    return load(tiny_model_dir)


def _batch_for(model: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return padded_batch(model.config.vocab_size, model.config.pad_token_id)


@pytest.mark.parametrize(("temperature", "chunk"), [(1.0, 4), (0.6, 1024), (0.6, 1)])
def test_matches_naive_values_and_gradients(model64: Any, temperature: float, chunk: int) -> None:
    ids, attention, response = _batch_for(model64)
    weights = torch.randn(2, *ids.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    results = []
    for fn in (sequence_logprobs_naive, token_logprobs):
        model64.zero_grad(set_to_none=True)
        kwargs = {"chunk": chunk} if fn is token_logprobs else {}
        logp, entropy = fn(model64, ids, attention, response, temperature=temperature, **kwargs)
        ((logp * weights[0]).sum() + (entropy * weights[1]).sum()).backward()
        grads = [p.grad.clone() for p in model64.parameters()]
        results.append((logp.detach(), entropy.detach(), grads))
    (naive_lp, naive_ent, naive_g), (lp, ent, g) = results
    assert lp.dtype == F64 and lp.shape == ids.shape
    torch.testing.assert_close(lp, naive_lp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ent, naive_ent, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, naive_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert (lp[response == 0] == 0).all() and (ent[response == 0] == 0).all()
    assert (lp[response == 1] < 0).all() and (ent[response == 1] > 0).all()


def test_padded_row_scores_as_it_would_alone(model64: Any) -> None:
    ids, attention, response = _batch_for(model64)
    with torch.no_grad():
        lp, ent = token_logprobs(model64, ids, attention, response, temperature=0.6, chunk=3)
        assert lp.grad_fn is None
        for row in range(ids.shape[0]):
            keep = attention[row].bool()
            alone = [x[row, keep][None] for x in (ids, attention, response)]
            lp_row, ent_row = token_logprobs(model64, *alone, temperature=0.6)
            torch.testing.assert_close(lp_row[0], lp[row, keep], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(ent_row[0], ent[row, keep], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk", [None, 3])
def test_response_logprobs_are_token_logprobs_without_the_entropy(tiny_model_dir: Path, chunk: int | None) -> None:
    # In the float32 and bf16-autocast setting the trainer scores its reference with: the same bits, not close values.
    model = load(tiny_model_dir, torch.float32)
    ids, attention, response = _batch_for(model)
    for autocast in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            lp, _ = token_logprobs(model, ids, attention, response, temperature=0.6, chunk=chunk)
            only = response_logprobs(model, ids, attention, response, temperature=0.6, chunk=chunk)
        assert torch.equal(only, lp) and bool((lp[response == 1] < 0).all())
    only = response_logprobs(model, ids, attention, response, chunk=chunk)
    only[response == 1].sum().backward()  # differentiable as token_logprobs is
    assert model.get_output_embeddings().weight.grad is not None


def test_left_padding_with_absolute_positions() -> None:
    """RoPE (Qwen2) is blind to a constant position shift; GPT-2's learned positions are not.

    A left-padded row scores as it would alone only if its positions restart at its first real token.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).to(F64).eval()
    ids = torch.randint(0, 50, (1, 8))
    response = torch.zeros_like(ids)
    response[:, 4:] = 1
    pad = torch.zeros(1, 3, dtype=ids.dtype)
    padded = [torch.cat([pad, x], dim=1) for x in (ids, torch.ones_like(ids), response)]
    with torch.no_grad():
        alone, _ = token_logprobs(model, ids, torch.ones_like(ids), response)
        in_batch, _ = token_logprobs(model, *padded)
        # Positions counted from the padding would change the scores: the test can tell.
        shifted = model(input_ids=padded[0], attention_mask=padded[1]).logits[:, 3:]
        assert (shifted - model(input_ids=ids).logits).abs().max() > 1e-2
    torch.testing.assert_close(in_batch[:, 3:], alone, rtol=1e-10, atol=1e-12)


def test_matches_the_scores_generate_sampled_with(model64: Any) -> None:
    """Left-padded prompts through `generate`: its raw logits give the same log-probs."""
    ids, attention, _ = _batch_for(model64)
    prompt_ids, prompt_mask = ids[:, :5], attention[:, :5]
    new = 4
    with torch.no_grad():
        out = model64.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        sequences = out.sequences
        gen_logp = torch.stack(out.logits, dim=1).to(F64).log_softmax(-1)
        gen_logp = gen_logp.gather(-1, sequences[:, 5:, None]).squeeze(-1)
        full_mask = torch.cat([prompt_mask, torch.ones(3, new, dtype=prompt_mask.dtype)], dim=1)
        response = torch.cat([torch.zeros_like(prompt_mask), torch.ones(3, new, dtype=prompt_mask.dtype)], dim=1)
        lp, _ = token_logprobs(model64, sequences, full_mask, response)
    # generate hands back its logits in float32, hence the tolerance; a position off by one is ~0.1.
    torch.testing.assert_close(lp[:, 5:], gen_logp, rtol=1e-6, atol=1e-6)


def test_peft_model_matches_naive(tiny_model_dir: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = load(tiny_model_dir)
    ids, attention, response = _batch_for(base)
    with torch.no_grad():
        base_lp, _ = token_logprobs(base, ids, attention, response)
    # init_lora_weights=False: random adapters, so LoRA visibly changes the scores.
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    results = []
    for fn in (sequence_logprobs_naive, token_logprobs):
        model.zero_grad(set_to_none=True)
        logp, entropy = fn(model, ids, attention, response)
        (logp.sum() + entropy.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((logp.detach(), grads))
    (naive_lp, naive_g), (lp, g) = results
    torch.testing.assert_close(lp, naive_lp, rtol=1e-10, atol=1e-12)
    assert len(g) == 8  # A and B of q_proj and v_proj in 2 layers: only the adapters train
    for a, b in zip(g, naive_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert (lp - base_lp).abs().max() > 1e-3


def test_half_precision_model_returns_float32(tiny_model_dir: Path) -> None:
    model = load(tiny_model_dir, torch.bfloat16)
    ids, attention, response = _batch_for(model)
    with torch.no_grad():
        lp, ent = token_logprobs(model, ids, attention, response)
        naive_lp, _ = sequence_logprobs_naive(model, ids, attention, response)
    assert lp.dtype == ent.dtype == torch.float32
    torch.testing.assert_close(lp, naive_lp)


def test_no_response_tokens_gives_zeros_and_backward_works(model64: Any) -> None:
    ids, attention, _ = _batch_for(model64)
    lp, ent = token_logprobs(model64, ids, attention, torch.zeros_like(ids))
    assert (lp == 0).all() and (ent == 0).all()
    (lp.sum() + ent.sum()).backward()


def test_bad_masks_raise(model64: Any) -> None:
    ids, attention, response = _batch_for(model64)
    first = response.clone()
    first[:, 0] = 1
    with pytest.raises(RlvrError, match="column 0"):
        token_logprobs(model64, ids, attention, first)
    outside = response.clone()
    outside[1, -1] = 1  # row 1's response is one token; the rest is right padding
    with pytest.raises(RlvrError, match="attention_mask"):
        token_logprobs(model64, ids, attention, outside)
    with pytest.raises(RlvrError, match="temperature"):
        token_logprobs(model64, ids, attention, response, temperature=0.0)
    with pytest.raises(RlvrError, match=r"\(B, T\)"):
        token_logprobs(model64, ids, attention[:, 1:], response)


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created while active and still alive (forward and backward).

    Every op output passes through this dispatch mode; each new storage is counted when it appears
    and uncounted by a weakref finaliser when it is freed. That measures exactly what the code under
    test allocates - independent of the CPU allocator's caching, of RSS noise from other processes,
    and of the memory already held by the model's weights - and it is deterministic, so the test
    cannot flake. Backward runs on the calling thread on CPU, so its allocations (including the
    recomputation inside torch.utils.checkpoint) are seen too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.largest = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self.live:
                continue
            self.live[key] = size
            self.current += size
            self.peak = max(self.peak, self.current)
            self.largest = max(self.largest, size)
            weakref.finalize(storage, self._free, key)
        return out


def test_peak_memory_stays_below_one_copy_of_the_logits() -> None:
    """A 512-token response with an 8192-token vocabulary, forward and backward.

    One (N, V) fp32 logits tensor is 16 MB here; the naive path holds several at once (logits,
    log_softmax, softmax and their gradients), the chunked path a few (chunk, V) blocks.
    """
    from transformers import Qwen2ForCausalLM

    from oneshot_rlvr.models.tiny import tiny_qwen2_config

    vocab, width, prompt, chunk = 8192, 512, 24, 32
    torch.manual_seed(0)
    config = tiny_qwen2_config(
        vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1
    )
    model = Qwen2ForCausalLM(config)
    ids = torch.randint(0, vocab, (1, width))
    attention = torch.ones_like(ids)
    response = torch.zeros_like(ids)
    response[:, prompt:] = 1
    full_logits_bytes = (width - prompt) * vocab * 4

    def run(fn: Any, **kwargs: Any) -> LiveTensorBytes:
        model.zero_grad(set_to_none=True)
        with LiveTensorBytes() as tracker:
            logp, entropy = fn(model, ids, attention, response, **kwargs)
            (logp.sum() + entropy.sum()).backward()
        return tracker

    naive = run(sequence_logprobs_naive)
    chunked = run(token_logprobs, chunk=chunk)
    # The tracker does see the full logits on the naive path ...
    assert naive.largest >= full_logits_bytes
    assert naive.peak > 3 * full_logits_bytes
    # ... and the chunked path never allocates one, in forward or backward.
    assert chunked.largest < full_logits_bytes / 4
    assert chunked.peak < full_logits_bytes
    assert chunked.peak < naive.peak / 4


def shared_prompt_batch(vocab: int, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four rows of one 5-token prompt (the 1-shot batch) with responses of 6, 2, 4, 1 tokens, right-padded."""
    gen = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, vocab, (5,), generator=gen)
    ids = torch.full((4, 11), pad)
    attention, response = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, r in enumerate([6, 2, 4, 1]):
        ids[row, :5] = prompt
        ids[row, 5 : 5 + r] = torch.randint(0, vocab, (r,), generator=gen)
        attention[row, : 5 + r] = 1
        response[row, 5 : 5 + r] = 1
    return ids, attention, response


@pytest.mark.parametrize("lora", [False, True])
def test_shared_prompt_runs_once_and_matches_naive(tiny_model_dir: Path, lora: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.models.qwen2 import modeling_qwen2

    from oneshot_rlvr.algo import logprobs as lp_module

    # Hugging Face's RMSNorm computes in float32 even in a float64 model; its rounding (1e-7) depends on how
    # the batch is laid out, which would hide a real error. Normalise in float64 so the paths must agree exactly.
    def rms_norm_f64(self: Any, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    monkeypatch.setattr(modeling_qwen2.Qwen2RMSNorm, "forward", rms_norm_f64)
    model = load(tiny_model_dir)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    ids, attention, response = shared_prompt_batch(model.config.vocab_size, model.config.pad_token_id)
    calls = []
    real = lp_module._prefix_once
    monkeypatch.setattr(lp_module, "_prefix_once", lambda *a: calls.append(a[-1]) or real(*a))
    results = []
    for fn in (sequence_logprobs_naive, token_logprobs):
        model.zero_grad(set_to_none=True)
        logp, entropy = fn(model, ids, attention, response, temperature=0.6)
        (logp.sum() + 0.5 * entropy.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((logp.detach(), entropy.detach(), grads))
    assert calls == [5]  # the shared path ran, with the 5-token prompt
    (naive_lp, naive_ent, naive_g), (lp, ent, g) = results
    torch.testing.assert_close(lp, naive_lp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ent, naive_ent, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, naive_g, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_prefix_is_not_shared_when_prompts_differ(model64: Any) -> None:
    from oneshot_rlvr.algo.logprobs import _shared_prefix_length

    ids, attention, response = shared_prompt_batch(model64.config.vocab_size, model64.config.pad_token_id)
    body = model64.get_decoder()
    assert _shared_prefix_length(body, ids, attention, response.bool()) == 5
    other = ids.clone()
    other[2, 3] = (other[2, 3] + 1) % model64.config.vocab_size
    assert _shared_prefix_length(body, other, attention, response.bool()) == 0
    padded = attention.clone()
    padded[1, 0] = 0
    assert _shared_prefix_length(body, ids, padded, response.bool()) == 0
