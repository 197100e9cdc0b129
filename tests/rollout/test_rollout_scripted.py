"""The scripted engine: prompt-major rows, real tokens with a tokenizer, padding sides, finish reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_tokenizer
from oneshot_rlvr.rollout.base import RolloutEngine, SamplingParams
from oneshot_rlvr.rollout.scripted import ScriptedEngine

SAMPLING = SamplingParams(max_new_tokens=8)


def test_rows_are_prompt_major_and_cycle_through_the_script() -> None:
    engine = ScriptedEngine({"two": ["a b", "c d e ..."], "one": ["x"]})
    roll = engine.generate(["say one", "say two"], 3, SAMPLING)
    assert roll.texts == ["x", "x", "x", "a b", "c d e ...", "a b"]
    assert roll.finish_reasons == ["eos", "eos", "eos", "eos", "length", "eos"]
    # One token per word, plus the stop token after a finished response; responses padded on the right.
    assert roll.response_lengths.tolist() == [2, 2, 2, 3, 4, 3]
    assert roll.response_mask[0].tolist() == [1, 1, 0, 0]
    assert roll.prompt_mask.tolist() == [[1, 1]] * 6
    assert engine.prompts == [["say one", "say two"]]


def test_with_a_tokenizer_the_ids_are_the_texts_tokens(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(str(tiny_model_dir))
    engine = ScriptedEngine({"Q": [r"\boxed{5}", "cut ..."]}, tokenizer=tok)
    roll = engine.generate(["Q", "a longer prompt Q"], 2, SAMPLING)
    for row, (prompt, text) in enumerate([("Q", r"\boxed{5}"), ("Q", "cut ..."), ("a longer prompt Q", r"\boxed{5}")]):
        prompt_ids = roll.prompt_ids[row][roll.prompt_mask[row].bool()].tolist()
        response_ids = roll.response_ids[row][roll.response_mask[row].bool()].tolist()
        assert prompt_ids == tok(prompt, add_special_tokens=False).input_ids
        stop = [tok.eos_token_id] if roll.finish_reasons[row] == "eos" else []
        assert response_ids == tok(text, add_special_tokens=False).input_ids + stop
        assert tok.decode(response_ids, skip_special_tokens=True) == text
    # Prompts are padded on the left: the shorter prompt's tokens end at the last column.
    assert roll.prompt_mask[0, -1] == 1 and roll.prompt_mask[0, 0] == 0
    assert torch.equal(roll.input_ids[:, -roll.response_ids.shape[1]:], roll.response_ids)


def test_a_prompt_the_script_does_not_cover_is_an_error() -> None:
    with pytest.raises(RlvrError, match="no script entry matches the prompt 'something else'"):
        ScriptedEngine({"Q": ["a"]}).generate(["something else"], 1, SAMPLING)


def test_it_is_a_rollout_engine_with_everything_callers_use() -> None:
    engine = ScriptedEngine({"x": ["y"]}, max_batch_rows=7)
    assert isinstance(engine, RolloutEngine)
    assert engine.max_batch_rows == 7
    engine.sync(None)
    engine.close()

    class GenerateOnly:
        def generate(self, prompts: list[str], n: int, sampling: SamplingParams, *, seed: int | None = None) -> None:
            return None

    assert not isinstance(GenerateOnly(), RolloutEngine)  # the protocol is more than generate
