"""The `stop` setting resolved per spec on the bundled tiny tokenizer (Qwen's special tokens: <|endoftext|> 0,
<|im_start|> 1, <|im_end|> 2), its errors, and the form config.yaml records."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_tokenizer, stop_token_ids
from oneshot_rlvr.models.stops import describe_stop, resolve_stop, resolved_stop


@pytest.fixture(scope="module")
def tok() -> Any:
    return load_tokenizer("builtin:tiny")


def with_eos(tok: Any, eos: str) -> Any:
    """A copy whose EOS is `eos`: Qwen2.5-Math-1.5B (a base model) names <|endoftext|> where the tiny model,
    like the instruct models, names <|im_end|>."""
    other = copy.deepcopy(tok)
    other.eos_token = eos
    return other


def generation_eos(ids: int | list[int]) -> SimpleNamespace:
    return SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=ids))


def test_the_tiny_tokenizer_has_qwens_special_tokens_where_these_tests_expect_them(tok: Any) -> None:
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert tok.eos_token_id == 2


@pytest.mark.parametrize(("spec", "expected"), [
    ("eos", [2]), ("chat", [0, 2]), ("harness", [0, 2]), ("<|im_end|>", [2]), ("0", [0]),
    ("eos,<|im_start|>", [1, 2]), (" chat , 1 ", [0, 1, 2]),
])
def test_each_spec_resolves_on_the_tiny_tokenizer(tok: Any, spec: str, expected: list[int]) -> None:
    assert resolve_stop(spec, tok) == expected


def test_a_base_models_eos_leaves_the_chat_turns_end_out(tok: Any) -> None:
    """Qwen2.5-Math-1.5B's tokenizer and generation_config both name <|endoftext|>: `eos` (the official run's
    stops) is that token alone, `chat` and `harness` add <|im_end|>."""
    base = with_eos(tok, "<|endoftext|>")
    model = generation_eos(0)
    assert resolve_stop("eos", base, model) == [0]
    assert resolve_stop("chat", base, model) == resolve_stop("harness", base, model) == [0, 2]


def test_eos_adds_every_id_of_the_generation_config(tok: Any) -> None:
    base = with_eos(tok, "<|endoftext|>")
    assert resolve_stop("eos", base, generation_eos([0, 1])) == [0, 1]  # (an instruct model lists two)
    assert resolve_stop("eos", base, generation_eos(1)) == [0, 1]


def test_harness_adds_a_single_token_end_of_sequence_that_chat_does_not(tok: Any) -> None:
    llama_like = copy.deepcopy(tok)
    llama_like.add_tokens(["</s>"], special_tokens=True)
    end = llama_like.convert_tokens_to_ids("</s>")
    assert end in resolve_stop("harness", llama_like) and end not in resolve_stop("chat", llama_like)


def test_the_default_stop_ids_are_the_chat_set(tok: Any) -> None:
    assert stop_token_ids(tok) == resolve_stop("chat", tok) == resolve_stop(TrainConfig().stop, tok)


def test_a_token_is_named_as_the_vocabulary_spells_it(tok: Any) -> None:
    [tid] = tok("\n", add_special_tokens=False).input_ids
    assert resolve_stop("Ċ", tok) == [tid]  # (the byte-level spelling of a newline)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "stop '': give comma-separated items"),
    ("eos,,chat", "stop 'eos,,chat': give comma-separated items"),
    ("<|nope|>", "'<|nope|>' is not a token of this tokenizer's vocabulary"),
    ("12 + 30", "'12 + 30' is not a token"),
    ("99999", "token id 99999 is outside this tokenizer's"),
])
def test_a_bad_spec_is_one_line_naming_the_setting_and_the_item(tok: Any, spec: str, message: str) -> None:
    with pytest.raises(RlvrError, match=r"^stop '") as err:
        resolve_stop(spec, tok)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_no_eos_anywhere_is_an_error_rather_than_a_rollout_that_never_stops(tok: Any) -> None:
    none = copy.deepcopy(tok)
    none.eos_token = None
    with pytest.raises(RlvrError, match="no EOS token"):
        resolve_stop("eos", none, generation_eos([]))
    assert resolve_stop("eos,<|im_end|>", none) == [2]


def test_an_empty_spec_fails_the_settings_check_before_any_model_loads() -> None:
    cfg = TrainConfig(problem="What is 2+3?", answer="5", stop=" ")
    with pytest.raises(RlvrError, match="stop ' '"):
        cfg.validate()


@pytest.mark.parametrize("spec", ["eos", "chat", "harness", "0,1", "eos,5", "<|im_end|>,Ċ"])
def test_the_recorded_form_resolves_to_the_same_ids(tok: Any, spec: str) -> None:
    if "5" in spec.split(","):
        spec = spec.replace("5", str(tok.convert_tokens_to_ids("5")))
    ids = resolve_stop(spec, tok)
    recorded = resolved_stop(spec, tok)
    assert resolve_stop(recorded, tok) == ids


def test_the_recorded_form_reads_as_tokens_and_falls_back_to_ids(tok: Any) -> None:
    assert describe_stop([0, 2], tok) == "<|endoftext|>,<|im_end|>"
    five = tok.convert_tokens_to_ids("5")
    assert describe_stop([five], tok) == str(five)  # the token "5" would read back as the id 5
