"""Per-token log-probs and entropies of response tokens, without materialising the full logits.

A causal LM's last step, hidden (B, T, H) -> logits (B, T, V), is by far its largest tensor for a big
vocabulary: Qwen2.5 has V = 151,936, so one batch of 8 x 4k tokens is ~20 GB of fp32 logits, and
log_softmax, softmax and their gradients each want as much again. Here the decoder body runs once,
only the positions that predict a response token are kept, and the output projection, log_softmax,
gather and entropy run on ``chunk`` of those positions at a time under activation checkpointing, so
forward and backward each hold at most one (chunk, V) block of logits at a time.

In 1-shot RLVR every row starts with the same prompt. When all rows share their tokens up to the first
response token, the prompt runs once (one row) and its keys and values are broadcast to every row as a
cache, so the body computes the shared prefix once instead of once per row, in both passes; gradients
flow back through the broadcast into the single prompt pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import cache_keyword

LOGITS_BUDGET = 2**25
"""Elements of one float32 logits block (128 MB): about 220 positions of Qwen2.5's 151,936-way vocabulary."""


def _causal_lm(model: nn.Module) -> Any:
    """The Hugging Face causal LM under a peft wrapper (LoRA layers stay injected in it)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        raise RlvrError(
            "token_logprobs: pass the unwrapped model (DistributedDataParallel's gradient sync needs "
            "its own forward, which this function bypasses to avoid the full logits)"
        )
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _head_chunk(head: nn.Module, hidden: Tensor, targets: Tensor, temperature: float,
                with_entropy: bool = True) -> tuple[Tensor, Tensor | None]:
    """(n, H) hidden states and (n,) target ids -> (n,) log-probs and (n,) entropies (None without)."""
    logits = head(hidden)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype) / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1) if with_entropy else None
    return logp, entropy


def _check_inputs(input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> Tensor:
    shapes = [tuple(t.shape) for t in (input_ids, attention_mask, response_mask)]
    if len(shapes[0]) != 2 or len(set(shapes)) != 1:
        raise RlvrError(
            f"token_logprobs: input_ids, attention_mask, response_mask must be one (B, T) shape, got {shapes}"
        )
    response = response_mask.bool()
    bad_first = response[:, 0]
    outside = response & ~attention_mask.bool()
    # One host sync for both checks.
    if bool((bad_first.any() | outside.any()).item()):
        raise RlvrError(
            "token_logprobs: response_mask must be 0 in column 0 (the first token has no prediction) "
            "and 0 wherever attention_mask is 0"
        )
    return response


def response_logprobs(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor, *,
                      temperature: float = 1.0, chunk: int | None = None, share_prefix: bool = True) -> Tensor:
    """`token_logprobs` without the entropies, for passes that only need log-probs (the reference and old-policy
    scoring): the same values, without the entropy's pass over every vocabulary entry."""
    return _scores(model, input_ids, attention_mask, response_mask, temperature, chunk, share_prefix, False)[0]


def token_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    *,
    temperature: float = 1.0,
    chunk: int | None = None,
    share_prefix: bool = True,
) -> tuple[Tensor, Tensor]:
    """Log-probs and entropies of the response tokens under ``model``, logits divided by temperature.

    Args:
        model: a Hugging Face causal LM (``get_decoder()`` and ``get_output_embeddings()``), or a peft
            model wrapping one. Not a DistributedDataParallel wrapper (its forward is bypassed).
        input_ids: (B, T) prompt + response tokens; prompts may be left-padded.
        attention_mask: (B, T) 1 on real tokens, 0 on padding.
        response_mask: (B, T) 1 on the response tokens to score; column 0 must be 0.
        temperature: the sampling temperature (the paper scores with logits / 0.6, as it samples).
        chunk: output positions whose (chunk, V) logits are computed at a time; None picks the most
            positions whose float32 logits fit in ``LOGITS_BUDGET`` elements (128 MB). When everything
            fits in one chunk it is not recomputed in the backward pass (small vocabularies).
        share_prefix: run a prompt shared by every row once (see the module docstring); the result is
            the same either way.

    Returns:
        (logp, entropy), both (B, T) and aligned with ``input_ids``: entry t is
        log p(input_ids[:, t] | input_ids[:, :t]) and the entropy of that predictive distribution,
        and 0 where response_mask is 0. Float32 (float64 for a float64 model). Differentiable with
        respect to the model's parameters.

    Positions are ``attention_mask.cumsum(-1) - 1`` (clamped at 0), the ones ``generate`` gives a
    left-padded prompt, so a padded row scores as it would alone.
    """
    logp, entropy = _scores(model, input_ids, attention_mask, response_mask, temperature, chunk, share_prefix, True)
    assert entropy is not None
    return logp, entropy


def _scores(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor, temperature: float,
            chunk: int | None, share_prefix: bool, with_entropy: bool) -> tuple[Tensor, Tensor | None]:
    hidden, rows, cols, h, targets = _response_hidden(model, input_ids, attention_mask, response_mask, temperature,
                                                      chunk, share_prefix)
    logps, entropies = head_logprobs(_causal_lm(model).get_output_embeddings(), h, targets, temperature, chunk,
                                     with_entropy)
    return (_place(logps, hidden, rows, cols, input_ids.shape),
            _place(entropies, hidden, rows, cols, input_ids.shape) if with_entropy else None)


@torch.no_grad()
def token_statistics(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor, *,
                     temperature: float = 1.0, chunk: int | None = None,
                     share_prefix: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """`token_logprobs` without gradients, plus each position's self-certainty: (logp, entropy, certainty),
    each (B, T) and 0 off the response. Self-certainty is KL(uniform || p) of the predictive distribution
    (`oneshot_rlvr.algo.losses.self_certainty_from_logits`), logits divided by temperature like the rest."""
    from oneshot_rlvr.algo.losses import entropy_from_logits, self_certainty_from_logits

    hidden, rows, cols, h, targets = _response_hidden(model, input_ids, attention_mask, response_mask, temperature,
                                                      chunk, share_prefix)
    head = _causal_lm(model).get_output_embeddings()
    size = chunk if chunk is not None else max(1, LOGITS_BUDGET // int(head.weight.shape[0]))
    parts: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    for start in range(0, h.shape[0], size):
        logits = head(h[start : start + size])
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[start : start + size, None]).squeeze(-1)
        for out, value in zip(parts, (logp, entropy_from_logits(logits), self_certainty_from_logits(logits)),
                              strict=True):
            out.append(value)
    shape = input_ids.shape
    logp_all, entropy, certainty = (_place(p, hidden, rows, cols, shape) for p in parts)
    return logp_all, entropy, certainty


def _response_hidden(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor,
                     temperature: float, chunk: int | None,
                     share_prefix: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The decoder body's pass: (all hidden states, rows and columns of the response tokens, the hidden states
    that predict them, their ids)."""
    if temperature <= 0:
        raise RlvrError(f"temperature: expected > 0, got {temperature}")
    if chunk is not None and chunk < 1:
        raise RlvrError(f"chunk: expected >= 1, got {chunk}")
    response = _check_inputs(input_ids, attention_mask, response_mask)
    lm = _causal_lm(model)
    if getattr(getattr(lm, "config", None), "final_logit_softcapping", None):
        raise RlvrError("token_logprobs: models with final_logit_softcapping are not supported")
    body = lm.get_decoder()
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    prefix = _shared_prefix_length(body, input_ids, attention_mask, response) if share_prefix else 0
    if prefix:
        hidden = _prefix_once(body, input_ids, attention_mask, position_ids, prefix)
    else:
        out = body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    # Hidden state t-1 predicts token t: keep only the predictions of response tokens.
    targets_at = response[:, 1:]
    rows, cols = targets_at.nonzero(as_tuple=True)
    return hidden, rows, cols + 1, hidden[:, :-1][rows, cols], input_ids[:, 1:][rows, cols]


def _place(parts: list[Tensor], hidden: Tensor, rows: Tensor, cols: Tensor, shape: torch.Size) -> Tensor:
    """Per-position values back into a (B, T) tensor aligned with input_ids, 0 elsewhere."""
    dtype = torch.promote_types(hidden.dtype, torch.float32)
    # No response token at all: an empty result still hangs on the graph, so backward() works.
    values = torch.cat(parts) if parts else (hidden.sum() * 0).to(dtype).expand(0)
    return hidden.new_zeros(shape[0], shape[1], dtype=dtype).index_put((rows, cols), values.to(dtype))


def head_logprobs(head: nn.Module, h: Tensor, targets: Tensor, temperature: float = 1.0, chunk: int | None = None,
                  with_entropy: bool = True) -> tuple[list[Tensor], list[Tensor]]:
    """The output layer's part of `token_logprobs`: (n, H) hidden states that predict the (n,) `targets` -> the
    log-probs and entropies (empty without) of consecutive chunks of positions, each chunk's logits made, used
    and (with gradients, when there is more than one chunk) remade in the backward pass on their own."""
    logps: list[Tensor] = []
    entropies: list[Tensor] = []
    weight = head.weight
    assert isinstance(weight, Tensor)
    size = chunk if chunk is not None else max(1, LOGITS_BUDGET // int(weight.shape[0]))
    # One chunk holds all the logits anyway: recomputing it in backward would save nothing.
    recompute = torch.is_grad_enabled() and (chunk is not None or h.shape[0] > size)
    for start in range(0, h.shape[0], size):
        args = (head, h[start : start + size], targets[start : start + size], temperature, with_entropy)
        if recompute:
            lp, ent = checkpoint(_head_chunk, *args, use_reentrant=False)
        else:
            lp, ent = _head_chunk(*args)
        logps.append(lp)
        if ent is not None:
            entropies.append(ent)
    return logps, entropies


def _shared_prefix_length(body: nn.Module, input_ids: Tensor, attention_mask: Tensor, response: Tensor) -> int:
    """Columns before the first response token when every row has the same unpadded tokens there, else 0.

    0 also when sharing cannot work: one row, a one-token prefix, or activation checkpointing (Hugging
    Face turns the cache off in training then)."""
    if input_ids.shape[0] < 2 or (getattr(body, "gradient_checkpointing", False) and body.training):
        return 0
    any_response = response.any(dim=0).nonzero()
    prefix = int(any_response[0]) if len(any_response) else 0
    if prefix < 2:
        return 0
    head = input_ids[:, :prefix]
    if not bool((head == head[:1]).all() and attention_mask[:, :prefix].bool().all()):
        return 0
    return prefix


def _prefix_once(body: nn.Module, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                 prefix: int) -> Tensor:
    """Hidden states (B, T, H) with the shared first `prefix` columns computed for one row only."""
    from transformers import DynamicCache

    batch = input_ids.shape[0]
    cache = DynamicCache()
    keyword = cache_keyword(body)
    first = body(input_ids=input_ids[:1, :prefix], position_ids=position_ids[:1, :prefix], use_cache=True,
                 **{keyword: cache})
    layers = getattr(cache, "layers", None)
    if layers is None or not all(hasattr(layer, "keys") for layer in layers):
        raise RlvrError("token_logprobs: this transformers version's cache has no per-layer keys; "
                        "pass share_prefix=False")
    for layer in layers:  # a broadcast view: no copy, and gradients from every row sum into the one prompt pass
        layer.keys = layer.keys.expand(batch, -1, -1, -1)
        layer.values = layer.values.expand(batch, -1, -1, -1)
    rest = body(input_ids=input_ids[:, prefix:], attention_mask=attention_mask, position_ids=position_ids[:, prefix:],
                use_cache=True, **{keyword: cache})
    head: Tensor = first.last_hidden_state if hasattr(first, "last_hidden_state") else first[0]
    tail: Tensor = rest.last_hidden_state if hasattr(rest, "last_hidden_state") else rest[0]
    return torch.cat([head.expand(batch, -1, -1), tail], dim=1)

