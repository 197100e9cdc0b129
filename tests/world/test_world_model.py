"""The bundled tiny model: small, loads like any Hugging Face model, answers in the world's styles."""

from __future__ import annotations

import json

import pytest

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.world import builtin_model_path


@pytest.fixture(scope="module")
def bundled() -> tuple:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = builtin_model_path("tiny")
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


def test_bundled_files_are_small_and_complete() -> None:
    path = builtin_model_path()
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json"):
        assert (path / name).is_file(), name
    assert (path / "model.safetensors").stat().st_size <= 25 * 2**20
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "qwen2"
    assert config["torch_dtype" if "torch_dtype" in config else "dtype"] == "bfloat16"


def test_unknown_builtin_name_is_refused() -> None:
    with pytest.raises(RlvrError, match="tiny"):
        builtin_model_path("huge")


def test_parameters_and_tokenizer(bundled: tuple) -> None:
    model, tok = bundled
    assert sum(p.numel() for p in model.parameters()) <= 10_000_000
    assert tok.tokenize("2048") == ["2", "0", "4", "8"]  # digits one per token
    assert tok.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tok.eos_token_id


def test_loads_by_builtin_name() -> None:
    from oneshot_rlvr.models.load import load_model, load_tokenizer

    model = load_model("builtin:tiny")
    assert model.config.model_type == "qwen2"
    assert load_tokenizer("builtin:tiny").padding_side == "left"


def test_answers_problems_ending_with_eos(bundled: tuple) -> None:
    from oneshot_rlvr.data.templates import messages_for
    from oneshot_rlvr.world.corpus import OPENERS, render_chat
    from oneshot_rlvr.world.measure import generate, grade_runs, style_of
    from oneshot_rlvr.world.problems import generate_problems

    model, tok = bundled
    problems = generate_problems("val", 20, seed=11)
    prompts = [render_chat(messages_for(p.question, "qwen25-math-cot")) for p in problems]
    greedy = generate(model, tok, prompts, max_new_tokens=200)
    assert all(finished for _, finished in greedy)  # every answer ends with <|im_end|> within 200 tokens
    # Greedy decoding starts the careless way (the most likely opener of the base model).
    assert sum(style_of(text) == "careless" for text, _ in greedy) >= 15
    careful = grade_runs(problems, generate(model, tok, [p + OPENERS["careful"] for p in prompts]),
                         prefix=OPENERS["careful"])
    careless = grade_runs(problems, generate(model, tok, [p + OPENERS["careless"] for p in prompts]),
                          prefix=OPENERS["careless"])
    # The latent skill the world is built around: careful solving beats careless solving.
    assert sum(g.lenient for g in careful) > sum(g.lenient for g in careless)
    assert sum(g.lenient for g in careful) >= 10


def test_base_model_is_more_careless_on_some_families(bundled: tuple) -> None:
    # The last pretraining phase weights the careless style higher on linear, function and remainder
    # problems: one example's lesson reaches those families later (the post-saturation picture).
    import torch

    from oneshot_rlvr.data.templates import messages_for
    from oneshot_rlvr.world.corpus import OPENERS, render_chat
    from oneshot_rlvr.world.problems import generate_problems

    model, tok = bundled
    careless_id = tok(OPENERS["careless"], add_special_tokens=False)["input_ids"][0]
    careful_id = tok(OPENERS["careful"], add_special_tokens=False)["input_ids"][0]
    share: dict[str, list[float]] = {}
    for p in generate_problems("val", 100, seed=3):
        ids = tok(render_chat(messages_for(p.question, "qwen25-math-cot")), return_tensors="pt",
                  add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1, [careless_id, careful_id]].float()
        share.setdefault(p.family, []).append(float(logits.softmax(-1)[0]))
    mean = {f: sum(v) / len(v) for f, v in share.items()}
    near, far = ("arithmetic", "word"), ("linear", "function", "remainder")
    assert all(mean[f] > 0.5 for f in mean)  # greedy decoding is careless on every family
    assert min(mean[f] for f in far) > max(mean[f] for f in near) + 0.05, mean
