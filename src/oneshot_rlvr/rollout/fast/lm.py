"""A lean sampling forward for Llama-family causal LMs (Qwen2, Llama, Mistral without sliding windows).

Decoding one token at a time, a small model spends most of each Hugging Face forward in Python: module
calls, mask construction, cache bookkeeping. `FastLM` runs the same arithmetic from fused copies of
the weights (q, k and v in one matmul, gate and up in one), writes keys and values into one
preallocated buffer per layer, and computes attention with PyTorch's fused kernel
(`scaled_dot_product_attention`, float32 softmax inside). Models it does not cover (see
`unsupported_reason`) keep the Hugging Face forward. Its outputs are checked against the Hugging Face
forward in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from oneshot_rlvr.models.precision import native_bf16
from oneshot_rlvr.rollout.decode import prefill_inputs

SUPPORTED_TYPES = ("qwen2", "llama", "mistral")


def unsupported_reason(model: Any) -> str | None:
    """Why `FastLM` cannot run `model` (None when it can)."""
    if callable(getattr(model, "get_base_model", None)):
        return "a peft (LoRA) wrapper"
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in SUPPORTED_TYPES:
        return f"model_type {kind!r} (covered: {', '.join(SUPPORTED_TYPES)})"
    act = getattr(config, "hidden_act", "silu")
    if act != "silu":
        return f"hidden_act {act!r}"
    if any(t != "full_attention" for t in getattr(config, "layer_types", None) or ()):
        return "sliding-window layers"
    if kind == "mistral" and getattr(config, "sliding_window", None):
        return "sliding-window attention"
    body = model.get_decoder()
    if not hasattr(body, "rotary_emb") or not hasattr(body.rotary_emb, "inv_freq"):
        return "no rotary embedding module"
    rope_type = getattr(body.rotary_emb, "rope_type", "default")
    if not isinstance(rope_type, str) or "dynamic" in rope_type or rope_type == "longrope":
        return f"rope_type {rope_type!r} (frequencies that change with the length)"
    for layer in body.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if hasattr(attn, "q_norm") or not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return "an attention block of another shape"
        if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
            return "an MLP of another shape"
    return None


@dataclass
class KVCache:
    """Keys and values of every layer, (B, kv_heads, capacity, head_dim) each; `length` positions filled."""

    keys: list[Tensor]
    values: list[Tensor]
    length: int = 0

    def select(self, rows: Tensor) -> None:
        """Keep (or repeat) the given batch rows, e.g. drop finished rows or copy a shared prefill."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]


@dataclass
class _Layer:
    norm_in: Tensor
    qkv: Tensor
    qkv_bias: Tensor | None
    o: Tensor
    o_bias: Tensor | None
    norm_post: Tensor
    gate_up: Tensor | None
    """Gate and up weights stacked; None when the layer uses the model's own `gate` and `up` (see `_weights`)."""
    gate_up_bias: Tensor | None
    down: Tensor
    down_bias: Tensor | None
    gate: Tensor | None = None
    up: Tensor | None = None
    packed: dict[str, Tensor] = field(default_factory=dict)
    """oneDNN's prepacked copies of the matmul weights (bf16 on CPU only; see `_pack`): qkv, o, down, and gate
    and up apart, so that the activation and the product run inside their matmuls (`_mlp_hidden`)."""


@dataclass
class FastLM:
    """Fused weights of a Llama-family model in `dtype`; `refresh` copies new values in place."""

    dtype: torch.dtype
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    eps: float
    inv_freq: Tensor = field(repr=False)
    """The rotary embedding's inverse frequencies (float32, head_dim / 2)."""
    rope_scale: float
    """The rotary embedding's factor on cos and sin (1 except for scaled RoPE types)."""
    embed: Tensor = field(repr=False)
    norm: Tensor = field(repr=False)
    head: Tensor = field(repr=False)
    head_bias: Tensor | None = field(repr=False)
    layers: list[_Layer] = field(repr=False)
    head_packed: Tensor | None = field(default=None, repr=False)
    fused: bool = False
    """One-kernel RMSNorm (`F.rms_norm`) and residual adds inside the matmuls (`torch.addmm`), as on CUDA:
    fewer, larger kernels, rounding slightly differently from the Hugging Face forward (whose norm rounds
    to the weights' dtype before scaling). False keeps its exact arithmetic."""
    prepack: bool = True
    """oneDNN's prepacked weights where they apply (see `_pack`). False keeps plain matmuls, which is what
    `torch.compile` needs: dynamo cannot trace the opaque packed tensors (Inductor packs frozen weights itself)."""

    def __post_init__(self) -> None:
        self._repack()

    @classmethod
    def from_model(cls, model: Any, dtype: torch.dtype | None = None, *, copy: bool = False,
                   fused: bool | None = None, prepack: bool = True) -> FastLM:
        """Copy `model`'s weights, fused, in `dtype` (default: the model's); the KV cache is in `dtype` too.

        A weight already in `dtype` and not fused is shared with the model unless `copy`.
        `fused` (default: on CUDA) selects the fused arithmetic and keeps the MLP's gate and up weights the
        model's own when in `dtype` (no stacked copy: 1.5 GB of GPU memory on a 1.5B model, for one more
        matmul a layer)."""
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"FastLM does not cover {reason}")
        config, body = model.config, model.get_decoder()
        dtype = dtype or next(model.parameters()).dtype
        fused = next(model.parameters()).device.type == "cuda" if fused is None else fused
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(
            dtype=dtype, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
            intermediate=body.layers[0].mlp.gate_proj.out_features, eps=float(body.norm.variance_epsilon),
            inv_freq=body.rotary_emb.inv_freq.detach().float().clone(),
            rope_scale=float(getattr(body.rotary_emb, "attention_scaling", 1.0)), fused=fused, prepack=prepack,
            **_weights(model, dtype, copy, split_mlp=fused),
        )

    def refresh(self, model: Any) -> None:
        """Copy the current values of `model`'s weights (same architecture) into the fused buffers."""
        top, layers = _parts(model)
        with torch.no_grad():  # straight into the fused buffers: no concatenated temporaries
            for name, parts in top.items():
                if not (name == "head" and self.head is self.embed):  # tied: copied once, as the embedding
                    _copy_parts(getattr(self, name), parts)
            for mine, layer in zip(self.layers, layers, strict=True):
                for name, parts in layer.items():
                    _copy_parts(getattr(mine, name), parts)
        self._repack()

    def _repack(self) -> None:
        """Prepack the matmul weights for oneDNN where that applies (bf16 on CPU): the packing is otherwise
        redone inside every small matmul of the decode loop (measured: decode step 5.5 -> 4.9 ms)."""
        if not self.prepack:
            for layer in self.layers:
                layer.packed = {}
            self.head_packed = None
            return
        with torch.no_grad():
            for layer in self.layers:
                stacked = layer.gate_up
                gate, up = stacked.split(self.intermediate) if stacked is not None else (layer.gate, layer.up)
                weights = {"qkv": layer.qkv, "o": layer.o, "gate": gate, "up": up, "down": layer.down}
                packed = {name: _pack(w) for name, w in weights.items()}
                layer.packed = {name: w for name, w in packed.items() if w is not None}
            self.head_packed = _pack(self.head)

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        shape = (batch, self.kv_heads, capacity, self.head_dim)
        device = self.embed.device
        return KVCache([torch.empty(shape, dtype=self.dtype, device=device) for _ in self.layers],
                       [torch.empty(shape, dtype=self.dtype, device=device) for _ in self.layers])

    @torch.no_grad()
    def forward(self, ids: Tensor, positions: Tensor, cache: KVCache, key_mask: Tensor | None = None) -> Tensor:
        """Logits (B, V) of the last of `ids` (B, T), appended at `cache.length`.

        `positions` (B, T) are the rotary positions; `key_mask` (B, cache.length + T) marks real tokens
        (None: no padding anywhere). New tokens attend causally to each other and to the cache.
        """
        # The weights already are in the sampling dtype; an outer autocast would only add casts.
        with torch.autocast(ids.device.type, enabled=False):
            return self._forward(ids, positions, cache, key_mask)

    def _forward(self, ids: Tensor, positions: Tensor, cache: KVCache, key_mask: Tensor | None) -> Tensor:
        batch, width = ids.shape
        start, end = cache.length, cache.length + ids.shape[1]
        x = F.embedding(ids, self.embed)
        cos, sin = self.rotary(positions, x.dtype)
        bias = _attention_bias(batch, width, start, key_mask, self.dtype, x.device)
        for layer, keys, values in zip(self.layers, cache.keys, cache.values, strict=True):
            q, k, v = self.attention_inputs(x, layer, cos, sin)
            keys[:, :, start:end] = k
            values[:, :, start:end] = v
            # One fused kernel (scores, float32 softmax, weighted sum) reading each cached key and value once:
            # on CPU about half the time of two small batched matmuls and a softmax.
            out = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end],
                                                 attn_mask=bias, enable_gqa=self.heads != self.kv_heads)
            x = self.block_output(x, out, layer)
        cache.length = end
        return self.logits(x)

    def rotary(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """(B, 1, T, head_dim) cos and sin at `positions` (B, T), broadcasting over heads."""
        cos, sin = _rotary(self.inv_freq, self.rope_scale, positions, dtype)
        return cos[:, None], sin[:, None]

    def attention_inputs(self, x: Tensor, layer: _Layer, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rotated queries (B, heads, T, D), rotated keys and values (B, kv_heads, T, D) of a layer's input x."""
        batch, width = x.shape[:2]
        qk_heads = self.heads + self.kv_heads
        h = _rms_norm(x, layer.norm_in, self.eps, self.fused)
        qkv = _linear(h, layer.qkv, layer.qkv_bias, layer.packed.get("qkv"))
        heads = qkv.view(batch, width, qk_heads + self.kv_heads, self.head_dim).transpose(1, 2)
        # Queries and keys rotate together: one set of small elementwise ops per layer instead of two.
        qk = _rope(heads[:, :qk_heads], cos, sin)
        return qk[:, : self.heads], qk[:, self.heads :], heads[:, qk_heads:]

    def block_output(self, x: Tensor, attention: Tensor, layer: _Layer) -> Tensor:
        """The layer's output: x plus the projected attention (B, heads, T, D), then plus its MLP."""
        batch, width = x.shape[:2]
        out = attention.transpose(1, 2).reshape(batch, width, self.heads * self.head_dim)
        x = _linear_add(out, layer.o, layer.o_bias, layer.packed.get("o"), x, self.fused)
        h = _mlp_hidden(_rms_norm(x, layer.norm_post, self.eps, self.fused), layer, self.intermediate)
        return _linear_add(h, layer.down, layer.down_bias, layer.packed.get("down"), x, self.fused)

    def logits(self, x: Tensor) -> Tensor:
        """Next-token logits (B, V) after the last position of the final hidden states x (B, T, hidden)."""
        h = _rms_norm(x[:, -1], self.norm, self.eps, self.fused)
        return _linear(h, self.head, self.head_bias, self.head_packed)


Parts = list[Tensor] | None
"""The model tensors one fused FastLM field is made of, stacked along dim 0 (None: the field is absent)."""


def _parts(model: Any) -> tuple[dict[str, Parts], list[dict[str, Parts]]]:
    """The model's tensors behind each FastLM field, and behind each layer's `_Layer` fields."""

    def one(t: Tensor | None) -> Parts:
        return None if t is None else [t.detach()]

    def biases(*linears: Any) -> Parts:
        if all(lin.bias is None for lin in linears):
            return None  # (a missing bias beside present ones counts as zeros)
        return [(lin.bias if lin.bias is not None else lin.weight.new_zeros(lin.out_features)).detach()
                for lin in linears]

    body = model.get_decoder()
    head = model.get_output_embeddings()
    top = {"embed": one(model.get_input_embeddings().weight), "norm": one(body.norm.weight),
           "head": one(head.weight), "head_bias": one(getattr(head, "bias", None))}
    layers = []
    for block in body.layers:
        a, m = block.self_attn, block.mlp
        layers.append({
            "norm_in": one(block.input_layernorm.weight),
            "qkv": [a.q_proj.weight.detach(), a.k_proj.weight.detach(), a.v_proj.weight.detach()],
            "qkv_bias": biases(a.q_proj, a.k_proj, a.v_proj), "o": one(a.o_proj.weight), "o_bias": one(a.o_proj.bias),
            "norm_post": one(block.post_attention_layernorm.weight),
            "gate_up": [m.gate_proj.weight.detach(), m.up_proj.weight.detach()],
            "gate_up_bias": biases(m.gate_proj, m.up_proj), "down": one(m.down_proj.weight),
            "down_bias": one(m.down_proj.bias),
        })
    return top, layers


def _weights(model: Any, dtype: torch.dtype, copy: bool = False, split_mlp: bool = False) -> dict[str, Any]:
    """FastLM's weight fields: each field's parts concatenated in `dtype` (a single part already in `dtype`
    is shared with the model unless `copy`; tied input and output embeddings stay one tensor). `split_mlp`
    leaves gate and up unstacked, shared with the model, where that needs no copy."""

    def fuse(parts: Parts) -> Tensor | None:
        if parts is None:
            return None
        whole = parts[0] if len(parts) == 1 else torch.cat(parts)
        if whole.dtype != dtype:
            return whole.to(dtype)
        return whole.clone() if copy and len(parts) == 1 else whole

    top, layers = _parts(model)
    fields: dict[str, Any] = {name: fuse(parts) for name, parts in top.items()}
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        fields["head"] = fields["embed"]
    fused: list[dict[str, Any]] = []
    for layer in layers:
        gate_up = layer["gate_up"]
        if split_mlp and not copy and gate_up is not None and all(w.dtype == dtype for w in gate_up):
            # (the model's weights, so `refresh` has nothing to copy: `_copy_parts` skips a None field)
            fused.append({**{name: fuse(parts) for name, parts in layer.items() if name != "gate_up"},
                          "gate_up": None, "gate": gate_up[0], "up": gate_up[1]})
        else:
            fused.append({name: fuse(parts) for name, parts in layer.items()})
    fields["layers"] = [_Layer(**layer) for layer in fused]
    return fields


def _copy_parts(dst: Tensor | None, parts: Parts) -> None:
    """Copy `parts` into their rows of the fused `dst`, skipping a part `dst` already shares."""
    if dst is None or parts is None:
        return
    start = 0
    for part in parts:
        rows = dst[start : start + part.shape[0]]
        if rows.data_ptr() != part.data_ptr():
            rows.copy_(part)
        start += part.shape[0]


_PACK_ROWS = 64
"""The batch-size hint given to oneDNN's packing (a decode batch); any number of rows still works."""


def _pack(weight: Tensor | None) -> Tensor | None:
    """oneDNN's prepacked layout of a bf16 CPU weight (N, K), for `_linear`; None where it does not apply.

    With a plain bf16 weight, the reorder into oneDNN's blocked layout happens inside every matmul call, a large
    share of a small-batch one (prepacked: 25-40% faster per matmul on the benchmark model's shapes).
    The packing ops are the ones `torch.compile` uses for frozen CPU weights; a PyTorch build without them, or a
    CPU without native bf16 (asked first: oneDNN may refuse to pack there, or pack into a slow reference path),
    keeps the plain matmul.
    """
    if (weight is None or weight.dtype != torch.bfloat16 or weight.device.type != "cpu"
            or not torch.backends.mkldnn.is_available() or not native_bf16(weight.device)):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_ROWS)
    except (AttributeError, RuntimeError):
        return None


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, packed: Tensor | None) -> Tensor:
    if packed is None:
        return F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _linear_add(x: Tensor, weight: Tensor, bias: Tensor | None, packed: Tensor | None, residual: Tensor,
                fused: bool = False) -> Tensor:
    """residual + x W^T (+ bias); on prepacked weights, or `fused`, the add runs inside the matmul (one kernel,
    not two; `fused` adds before rounding the product)."""
    if packed is None and fused and bias is None:
        flat = torch.addmm(residual.reshape(-1, residual.shape[-1]), x.reshape(-1, x.shape[-1]), weight.t())
        return flat.view(residual.shape)
    if packed is None:
        return residual + F.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed, bias, "add")


def _mlp_hidden(h: Tensor, layer: _Layer, intermediate: int) -> Tensor:
    """silu(h W_gate^T) * (h W_up^T): on prepacked weights the activation and the product run inside the two
    matmuls (oneDNN post-ops; the decode step's small elementwise kernels cost as much as its matmuls)."""
    gate_bias, up_bias = (None, None) if layer.gate_up_bias is None else layer.gate_up_bias.split(intermediate)
    if "gate" in layer.packed and "up" in layer.packed:
        gate = torch.ops.mkldnn._linear_pointwise(h, layer.packed["gate"], gate_bias, "swish", [], "")
        return torch.ops.mkldnn._linear_pointwise.binary(h, gate, layer.packed["up"], up_bias, "mul")
    if layer.gate_up is None:  # the model's own gate and up weights
        assert layer.gate is not None and layer.up is not None
        return F.silu(F.linear(h, layer.gate, gate_bias)) * F.linear(h, layer.up, up_bias)
    gate, up = F.linear(h, layer.gate_up, layer.gate_up_bias).split(intermediate, dim=-1)
    return F.silu(gate) * up


def _rms_norm(x: Tensor, weight: Tensor, eps: float, fused: bool = False) -> Tensor:
    if fused:  # one kernel on CUDA (float32 inside, scaled before the one rounding)
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    # The Hugging Face order: normalise in float32, cast back, then scale.
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotary(inv_freq: Tensor, scale: float, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(B, T, head_dim) cos and sin at `positions`, computed as the Hugging Face rotary module does (tested equal):
    a plain tensor function, so that a sampling process needs no model class."""
    freqs = positions[..., None].float() * inv_freq.to(positions.device)
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scale).to(dtype), (emb.sin() * scale).to(dtype)


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _attention_bias(batch: int, width: int, start: int, key_mask: Tensor | None, dtype: torch.dtype,
                    device: torch.device) -> Tensor | None:
    """Additive (B or 1, 1, T, S) bias in `dtype`: causal among the T new tokens, a large negative value on
    padded keys; None if nothing is masked (one new token, no padding)."""
    end = start + width
    if width == 1 and key_mask is None:
        return None
    allowed = (torch.arange(end, device=device)[None, :]
               <= torch.arange(start, end, device=device)[:, None])[None]  # (1, T, S)
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, :end].bool()
    # The lowest finite value, not -inf: a padding query that sees no key gets a uniform (unused) row, not NaN.
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    return bias[:, None]


class FastStep:
    """A decode-loop Step through `FastLM` (see `oneshot_rlvr.rollout.decode.Step`)."""

    def __init__(self, lm: FastLM, cache: KVCache):
        self.lm, self.cache = lm, cache

    def __call__(self, feed: Tensor, positions: Tensor, attn: Tensor | None) -> Tensor:
        return self.lm.forward(feed, positions, self.cache, attn)

    def select(self, keep: Tensor) -> None:
        self.cache.select(keep)


def prefilled_step(lm: FastLM, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int,
                   shared: tuple[torch.Tensor, torch.Tensor] | None) -> FastStep:
    """A decode step over `lm`, its cache holding all but the last token of each distinct prompt when `shared`."""
    capacity = ids.shape[1] + max_new_tokens
    if shared is None:
        return FastStep(lm, lm.new_cache(ids.shape[0], capacity))
    unique, slots = shared
    cache = prefill(lm, ids, mask, unique, capacity)
    cache.select(slots)
    return FastStep(lm, cache)


def prefill(lm: FastLM, ids: torch.Tensor, mask: torch.Tensor, unique: torch.Tensor, capacity: int) -> KVCache:
    """A cache of `capacity` positions holding all but the last token of the distinct prompts `unique` (row
    indices of left-padded `ids`), one cache row each."""
    cache = lm.new_cache(len(unique), capacity)
    u_ids, u_mask, positions = prefill_inputs(ids, mask, unique)
    lm.forward(u_ids, positions, cache, None if bool(u_mask.all()) else u_mask)
    return cache
