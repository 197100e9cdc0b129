"""Rollouts end at the stop set the engine was given: on the bundled tiny model, which ends its answers with
<|im_end|> (id 2) the way a chat-tuned Qwen does."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from oneshot_rlvr.data import render_prompt
from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import Rollouts, SamplingParams
from oneshot_rlvr.rollout.fast import FastRolloutEngine
from oneshot_rlvr.rollout.hf import HFRolloutEngine

QUESTIONS = ["What is 12 + 30?", "What is 7 * 6?"]
GREEDY = SamplingParams(temperature=0, max_new_tokens=48)  # (the model's answers here take about 33 tokens)


@pytest.fixture(scope="module")
def parts() -> tuple[Any, Any, list[str]]:
    tok = load_tokenizer("builtin:tiny")
    prompts = [render_prompt(q, "qwen25-math-cot", tok) for q in QUESTIONS]
    return load_model("builtin:tiny").eval(), tok, prompts


def responses(out: Rollouts) -> list[list[int]]:
    return [out.response_ids[i][out.response_mask[i].bool()].tolist() for i in range(len(out))]


@pytest.fixture(scope="module")
def chat_out(parts: tuple) -> Rollouts:
    model, tok, prompts = parts
    return HFRolloutEngine(model, tok, stop="chat").generate(prompts, 1, GREEDY)


def test_chat_ends_each_answer_at_its_end_of_turn(chat_out: Rollouts) -> None:
    assert chat_out.finish_reasons == ["eos"] * len(QUESTIONS)
    for ids in responses(chat_out):
        assert ids[-1] == 2 and 2 not in ids[:-1]


def test_eos_of_a_base_model_runs_past_the_end_of_turn(parts: tuple, chat_out: Rollouts) -> None:
    """The official run's stop (Qwen2.5-Math-1.5B's EOS is <|endoftext|>): a response goes on after <|im_end|>,
    its tokens up to there the same as under `chat` (greedy, same weights)."""
    model, tok, prompts = parts
    base_tok = copy.deepcopy(tok)
    base_tok.eos_token = "<|endoftext|>"
    base_model = copy.deepcopy(model)
    base_model.generation_config.eos_token_id = 0
    chat = responses(chat_out)
    engine = HFRolloutEngine(base_model, base_tok, stop="eos")
    assert engine.stop_ids == [0]
    out = engine.generate(prompts, 1, GREEDY)
    for turn, ids in zip(chat, responses(out), strict=True):
        assert ids[: len(turn)] == turn and len(ids) > len(turn)  # on past <|im_end|>
        assert (ids[-1] == 0) == (len(ids) < GREEDY.max_new_tokens)  # ...to <|endoftext|> or the length limit


@pytest.mark.parametrize("engine_type", [FastRolloutEngine, HFRolloutEngine], ids=["fast", "hf"])
def test_a_chosen_token_id_ends_every_response_at_its_first_appearance(parts: tuple, chat_out: Rollouts,
                                                                       engine_type: type) -> None:
    model, tok, prompts = parts
    plain = responses(chat_out)
    early = plain[0][3]  # a token the first answer emits early
    out = engine_type(model, tok, stop=str(early)).generate(prompts, 1, GREEDY)
    assert out.finish_reasons[0] == "eos"
    for full, ids, reason in zip(plain, responses(out), out.finish_reasons, strict=True):
        if early in full:
            cut = full.index(early) + 1
            assert ids == full[:cut] and reason == "eos"
        else:  # <|im_end|> is no longer a stop: the response goes on to the length limit
            assert reason == "length" and len(ids) == GREEDY.max_new_tokens


def test_stop_ids_given_as_a_list_are_kept(parts: tuple) -> None:
    model, tok, _ = parts
    assert HFRolloutEngine(model, tok, stop=[5, 2]).stop_ids == [2, 5]
    assert torch.tensor(HFRolloutEngine(model, tok, stop="harness").stop_ids).tolist() == [0, 2]
