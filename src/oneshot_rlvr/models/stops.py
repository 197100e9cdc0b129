"""What ends a rollout: the `stop` setting, resolved against a tokenizer (and its model) into token ids.

A stop spec is a comma-separated list of items, each one of
- a named set: `eos` (the tokenizer's EOS id and the model's generation_config EOS ids), `chat` (eos plus the
  chat templates' end-of-turn markers `<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`) or `harness` (eos plus the
  Qwen2.5-Math evaluation harness's stops `</s>`, `<|im_end|>`, `<|endoftext|>`); a marker counts where the
  tokenizer has it as one token;
- a token, as the vocabulary spells it (`<|im_end|>`; items are stripped, so a whitespace token is given by
  its vocabulary spelling, e.g. `Ċ` for a newline in a byte-level vocabulary, or by its id);
- a token id (`151645`): digits are always read as an id.

`eos` is what stopped the official 1-shot RLVR run (docs/official-protocol.md; One-Shot-RLVR at 21ed529): verl's
vLLM rollout builds its SamplingParams from n, logprobs, max_tokens and the rollout config's keys alone
(verl/workers/rollout/vllm_rollout/vllm_rollout.py lines 111-127, the same in vllm_rollout_spmd.py), and neither
verl/trainer/config/ppo_trainer.yaml (rollout: `ignore_eos: False`, line 74) nor
scripts/train/training_1.5b_pi1_r128.sh adds a stop. vLLM then stops at the tokenizer's EOS and adds
generation_config's EOS ids (the fields the fork's engine loads in
verl/third_party/vllm/vllm_v_0_6_3/llm_engine_sp.py line 205). For Qwen2.5-Math-1.5B, a base model, that is
<|endoftext|> alone, not the chat turn's <|im_end|>.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oneshot_rlvr.errors import RlvrError

STOP_SETS: dict[str, tuple[str, ...]] = {
    "eos": (),
    "chat": ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"),
    # Qwen2.5-Eval/evaluation/math_eval.py: stop_words "</s>", "<|im_end|>", "<|endoftext|>" and, for Qwen2
    # models, stop_token_ids [151645, 151643] (the ids of the last two); vLLM adds the EOS ids itself.
    "harness": ("</s>", "<|im_end|>", "<|endoftext|>"),
}
"""Named stop sets: the markers each adds to the EOS ids."""


def eos_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """The tokenizer's EOS id and the EOS ids of the model's generation_config (an int or a list there)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return ids


def _vocab_id(tokenizer: Any, token: str) -> int | None:
    """The id of `token` when the vocabulary holds it as one entry (not the unknown token)."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
        return tid
    return None


def _items(spec: str) -> list[str]:
    items = [s.strip() for s in spec.split(",")]
    if not spec.strip() or any(not s for s in items):
        raise RlvrError(f"stop {spec!r}: give comma-separated items, each {', '.join(STOP_SETS)}, "
                        "a token or a token id")
    return items


def check_stop(spec: str) -> None:
    """The spec's form alone (no tokenizer needed): non-empty items separated by commas."""
    _items(spec)


def resolve_stop(spec: str | Sequence[int], tokenizer: Any, model: Any = None) -> list[int]:
    """The sorted token ids that end a response under `spec` (ids given as a sequence are checked and kept)."""
    if not isinstance(spec, str):
        given = [int(i) for i in spec]
        return _nonempty([_in_range(i, ",".join(map(str, given)), tokenizer) for i in given], str(given))
    ids: set[int] = set()
    for item in _items(spec):
        if item in STOP_SETS:
            ids |= eos_ids(tokenizer, model)
            ids.update(t for t in (_vocab_id(tokenizer, m) for m in STOP_SETS[item]) if t is not None)
        elif item.isascii() and item.isdigit():
            ids.add(_in_range(int(item), spec, tokenizer))
        else:
            tid = _vocab_id(tokenizer, item)
            if tid is None:
                raise RlvrError(f"stop {spec!r}: {item!r} is not a token of this tokenizer's vocabulary "
                                f"(give its id, or one of {', '.join(STOP_SETS)})")
            ids.add(tid)
    return _nonempty(ids, spec)


def _in_range(tid: int, spec: str, tokenizer: Any) -> int:
    if not 0 <= tid < len(tokenizer):
        raise RlvrError(f"stop {spec!r}: token id {tid} is outside this tokenizer's {len(tokenizer)} ids")
    return tid


def _nonempty(ids: Sequence[int] | set[int], spec: str) -> list[int]:
    if not ids:
        raise RlvrError(f"stop {spec!r}: this tokenizer and model name no EOS token; "
                        "add a token or a token id that ends a response")
    return sorted(set(ids))


def describe_stop(ids: Sequence[int], tokenizer: Any) -> str:
    """A spec that names exactly `ids` and reads well (what config.yaml records): each id as its token where
    that token resolves back to it unambiguously, else as the number."""
    items = []
    for tid in ids:
        token = tokenizer.convert_ids_to_tokens(int(tid))
        plain = (isinstance(token, str) and bool(token) and token == token.strip() and "," not in token
                 and not token.isdigit() and token not in STOP_SETS)
        items.append(token if plain and _vocab_id(tokenizer, token) == tid else str(tid))
    return ",".join(items)


def resolved_stop(spec: str, tokenizer: Any, model: Any = None) -> str:
    """`spec` resolved and written back as a spec (`describe_stop`): the form a run's config.yaml records."""
    return describe_stop(resolve_stop(spec, tokenizer, model), tokenizer)
