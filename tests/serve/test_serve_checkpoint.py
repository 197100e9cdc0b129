"""Which checkpoint `rlvr serve` picks from a run folder, and the served copy's chat template."""

from __future__ import annotations

import pytest
from serve_run import make_run

from oneshot_rlvr.data.templates import render_prompt
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_tokenizer
from oneshot_rlvr.serve.checkpoint import pick_checkpoint, served_chat_template, served_copy


def test_best_is_the_highest_validation_accuracy_earliest_on_ties(tmp_path):
    run = make_run(tmp_path, [10, 20, 30], val={10: 0.4, 20: 0.7, 25: 0.9, 30: 0.7})
    choice = pick_checkpoint(str(run))  # step 25 scored best but has no checkpoint
    assert choice.step == 20 and choice.folder == run / "checkpoints" / "step_20"
    assert choice.reason == "serving step 20 (best validation accuracy 70.0% of 3 validated checkpoints)"
    assert pick_checkpoint(str(run), "last").step == 30 and pick_checkpoint(str(run), "10").step == 10


def test_without_validation_best_falls_back_to_last_and_says_so(tmp_path):
    choice = pick_checkpoint(str(make_run(tmp_path, [5, 15])))
    assert choice.step == 15 and "no validation accuracy recorded" in choice.reason


def test_bad_choices_are_one_line(tmp_path):
    run = make_run(tmp_path / "run", [5])
    with pytest.raises(RlvrError, match=r"--step 7: expected best, last or one of the steps 5"):
        pick_checkpoint(str(run), "7")
    with pytest.raises(RlvrError, match="not a run folder"):
        pick_checkpoint(str(tmp_path / "nothing"))
    (run / "metrics.jsonl").write_text('{"step": 5}\nnot json\n', encoding="utf-8")
    with pytest.raises(RlvrError, match=r"metrics.jsonl, line 2: not valid JSON"):
        pick_checkpoint(str(run))


@pytest.mark.parametrize("template", ["qwen25-math-cot", "oneshot-train", "plain"])
def test_a_plain_user_message_gets_the_templates_prompt(tmp_path, template):
    run = make_run(tmp_path / "run", [3])
    folder, how = served_copy(pick_checkpoint(str(run)), template, tmp_path / "served")
    assert how == "weights linked from the checkpoint" and (folder / "model.safetensors").is_symlink()
    assert not (folder / "trainer_state.pt").exists()
    served, base = load_tokenizer(str(folder)), load_tokenizer("builtin:tiny")
    for problem in ("What is 12 + 30?", "Solve 2x = 8. Let's think step by step and output the final answer "
                                        "within \\boxed{}."):
        got = served.apply_chat_template([{"role": "user", "content": problem}], tokenize=False,
                                         add_generation_prompt=True)
        assert got == render_prompt(problem, template, base)
    # the checkpoint itself is untouched
    assert load_tokenizer(str(run / "checkpoints" / "step_3")).chat_template == base.chat_template


def test_a_clients_own_system_turn_is_kept():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    base = load_tokenizer("builtin:tiny").chat_template
    text = ImmutableSandboxedEnvironment().from_string(served_chat_template("qwen25-math-cot", base)).render(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        add_generation_prompt=True)
    assert text.count("system") == 1 and "Be brief." in text and "reason step by step" not in text


def test_a_lora_checkpoint_is_merged_into_its_base(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from oneshot_rlvr.models.load import load_model

    run = tmp_path / "run"
    folder = run / "checkpoints" / "step_1"
    peft_model = get_peft_model(load_model("builtin:tiny"), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                        init_lora_weights=False))
    peft_model.save_pretrained(folder)
    (run / "config.yaml").write_text("model: builtin:tiny\n", encoding="utf-8")
    served, how = served_copy(pick_checkpoint(str(run)), "plain", tmp_path / "served")
    assert how == "LoRA adapter merged into builtin:tiny (float32)" and (served / "chat_template.jinja").exists()
    ids = torch.tensor([[5, 17, 40, 3]])
    with torch.no_grad():
        want = peft_model(ids).logits
        got = load_model(str(served))(ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, load_model("builtin:tiny")(ids).logits, atol=1e-3)  # the adapter did something
