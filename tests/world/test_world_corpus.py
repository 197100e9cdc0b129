"""The pretraining corpus: mix fractions, the careless style's systematic error, checks, chat format."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter
from pathlib import Path

import pytest

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.world.corpus import (
    CHECK_PHRASE,
    OPENERS,
    CorpusMix,
    iter_documents,
    make_document,
    render_chat,
)
from oneshot_rlvr.world.problems import draw_problem, split_of

N = 4000


@pytest.fixture(scope="module")
def docs() -> list:
    return list(itertools.islice(iter_documents(0), N))


def test_stream_is_deterministic_and_seeded() -> None:
    a = [d.response for d in itertools.islice(iter_documents(1), 20)]
    assert a == [d.response for d in itertools.islice(iter_documents(1), 20)]
    assert a != [d.response for d in itertools.islice(iter_documents(2), 20)]


def test_style_template_and_box_fractions_follow_the_mix(docs: list) -> None:
    mix = CorpusMix()
    styles = Counter(d.style for d in docs)
    assert abs(styles["careless"] / N - mix.careless) < 0.03
    assert abs(styles["careful"] / N - mix.careful) < 0.03
    assert abs(styles["check"] / N - mix.check) < 0.02
    templates = Counter(d.template for d in docs)
    assert abs(templates["qwen25-math-cot"] / N - mix.template_eval) < 0.03
    assert abs(templates["plain"] / N - mix.template_plain) < 0.02
    for style, rate in (("careless", mix.boxed_careless), ("careful", mix.boxed_careful),
                        ("check", mix.boxed_check)):
        rows = [d for d in docs if d.style == style]
        assert abs(sum(d.boxed for d in rows) / len(rows) - rate) < 0.05, style
        assert all(("\\boxed{" in d.response) == d.boxed for d in rows)


def test_style_is_drawn_independently_of_the_family(docs: list) -> None:
    for family in {d.family for d in docs}:
        rows = [d for d in docs if d.family == family]
        share = sum(d.style == "careless" for d in rows) / len(rows)
        assert abs(share - CorpusMix().careless) < 0.06, family


def test_openers_announce_the_style(docs: list) -> None:
    for d in docs:
        opener = OPENERS["careless"] if d.style == "careless" else OPENERS["careful"]
        assert d.response.startswith(opener)
        assert d.response.endswith("<|im_end|>")
        assert (CHECK_PHRASE in d.response) == (d.style == "check")


def test_careless_errs_systematically_on_three_step_problems(docs: list) -> None:
    careless = [d for d in docs if d.style == "careless"]
    # Two-step problems: always right. Three-step: right only when it writes the last step anyway.
    for d in careless:
        computations = d.response.count(" = ")
        assert computations <= 3
        if computations == 3:
            assert d.correct
    three = [d for d in careless if d.response.count(" = ") >= 2 and not d.correct]
    assert three  # stopped one step early, reporting the intermediate value
    right = sum(d.correct for d in careless) / len(careless)
    assert 0.35 < right < 0.65  # 40% two-step + 60% x 15% finishing
    careful = [d for d in docs if d.style != "careless"]
    assert sum(d.correct for d in careful) / len(careful) > 0.94


def test_a_check_corrects_the_wrong_value_it_finds() -> None:
    mix = CorpusMix(careless=0, careful=0, check=1, check_error=1.0, careful_slip=0.0)
    rng = random.Random(4)
    for _ in range(50):
        question, steps = draw_problem(rng, "arithmetic")
        doc = make_document(question, "arithmetic", steps, rng, mix)
        assert doc.style == "check" and doc.correct
        line = next(x for x in doc.response.splitlines() if CHECK_PHRASE in x)
        written = int(line.split(CHECK_PHRASE)[0].rstrip(". ").split(" = ")[-1])
        right = int(line.split(CHECK_PHRASE)[1].split(" = ")[1].split(",")[0])
        assert written != right
        assert f"not {written}. So it is {right}." in line


def test_documents_only_use_pretrain_problems(docs: list) -> None:
    assert {split_of(d.question) for d in docs[:500]} == {"pretrain"}
    assert all(d.question in d.prompt for d in docs[:500])


def test_render_chat_matches_the_tokenizer_template(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "What is 1 + 1?"}]
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render_chat(messages) == expected


def test_bad_mix_is_refused() -> None:
    with pytest.raises(RlvrError, match="boxed_careful"):
        CorpusMix(boxed_careful=1.5)
    with pytest.raises(RlvrError, match="style weights"):
        CorpusMix(careless=0, careful=0, check=0)
    with pytest.raises(RlvrError, match="careless"):
        CorpusMix(careless=-1)


def test_careless_weight_can_differ_by_family() -> None:
    mix = CorpusMix(careless_linear=3.0, careless_word=0.0)
    docs = list(itertools.islice(iter_documents(5, mix), 3000))
    share = {f: sum(d.style == "careless" for d in docs if d.family == f) / sum(d.family == f for d in docs)
             for f in ("linear", "word", "arithmetic")}
    assert abs(share["linear"] - 3.0 / 3.3) < 0.05
    assert share["word"] == 0.0
    assert abs(share["arithmetic"] - mix.careless) < 0.06
    # Unset, the per-family weights leave the stream exactly as it was before they existed (the digest
    # was taken with that earlier code): the bundled model's first two phases stay reproducible.
    digest = hashlib.sha256()
    for d in itertools.islice(iter_documents(5), 300):
        digest.update((d.prompt + d.response).encode())
    assert digest.hexdigest()[:16] == "ab6841bb303d49a4"
    with pytest.raises(RlvrError, match="on word problems"):
        CorpusMix(careless_word=0.0, careful=0.0, check=0.0)
