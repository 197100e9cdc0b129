"""The trainer on a tiny local model: run folder contents, resume, learning signal, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from oneshot_rlvr.cli import main
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.data import render_prompt
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.train import TrainingDiverged, train

BASE = ["problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4", "micro_batch_size=8", "n=4",
        "max_new_tokens=6", "lr=1e-3", "device=cpu", "temperature=1.0", "save_every=0"]


def first_char_digit(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if t[:1].isdigit() else 0.0 for t in texts]


def has_letter_e(problems: list, texts: list[str]) -> list[float]:
    return [1.0 if "e" in t else 0.0 for t in texts]


def config(model_dir: Path, *extra: str):
    return resolve_config(None, None, [f"model={model_dir}", *BASE, *extra])


def timing_free(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time") and k not in ("tokens_per_s", "peak_memory_gb")}


def test_cli_three_steps_writes_the_run_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", f"model={tiny_model_dir}", *BASE, "steps=3", "save_every=2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward_mean", "reward_std", "train_accuracy", "entropy", "kl", "pg_loss", "clip_frac", "grad_norm",
                "response_length_mean", "response_length_max", "truncation_rate", "tokens_per_s", "time_generate",
                "time_score", "time_update", "peak_memory_gb"):
        assert key in rows[0], key
    history = json.loads((out / "history.json").read_text())
    assert list(history) == ["0"] and len(history["0"]) == 3  # one example, one epoch per step
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_2", "step_3"]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "step_3")
    AutoTokenizer.from_pretrained(out / "checkpoints" / "step_3")
    saved = (out / "config.yaml").read_text()
    assert "steps: 3" in saved and "answer: '5'" in saved


def test_resume_gives_the_same_weights_and_metrics(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Two updates per step (mini-batches of 2 prompts) and uneven micro-batches exercise old log-probs too.
    extra = ("mini_batch_size=2", "micro_batch_size=3", "save_every=2")
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(config(tiny_model_dir, *extra, "steps=4"), whole, reward_fn=has_letter_e, quiet=True)
    train(config(tiny_model_dir, *extra, "steps=2"), split, reward_fn=has_letter_e, quiet=True)
    train(config(tiny_model_dir, *extra, "steps=4"), split, reward_fn=has_letter_e, quiet=True, resume=True)
    a = load_file(whole / "checkpoints/step_4/model.safetensors")
    b = load_file(split / "checkpoints/step_4/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a = [timing_free(json.loads(x)) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    rows_b = [timing_free(json.loads(x)) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert rows_a == rows_b and len(rows_a) == 4
    assert (whole / "history.json").read_text() == (split / "history.json").read_text()


def _first_token_digit_prob(model_dir: Path, tokenizer_dir: Path) -> float:
    tok = load_tokenizer(str(tokenizer_dir))
    model = load_model(str(model_dir))
    prompt = render_prompt("What is 2+3?", "oneshot-train", tok)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        probs = model(ids).logits[0, -1].softmax(-1)
    digits = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    return float(probs[digits].sum())


def test_rewarded_responses_become_more_likely(tiny_model_dir: Path, tmp_path: Path) -> None:
    # A digit comes first in ~2.6% of samples: 16 prompts x 8 samples give a few rewarded ones per step (with 4
    # prompts the gain depended on the sampling seed: x1.4 to x1.85 after 6 steps; this way x2.7 to x3.3).
    cfg = config(tiny_model_dir, "steps=8", "n=8", "batch_size=16", "mini_batch_size=16", "micro_batch_size=64",
                 "max_new_tokens=2", "lr=3e-3", "kl_coef=0", "entropy_coef=0")
    train(cfg, tmp_path / "run", reward_fn=first_char_digit, quiet=True)
    before = _first_token_digit_prob(tiny_model_dir, tiny_model_dir)
    after = _first_token_digit_prob(tmp_path / "run/checkpoints/step_8", tiny_model_dir)
    assert after > 1.5 * before, (before, after)


def test_entropy_only_raises_entropy(peaked_model_dir: Path, tmp_path: Path) -> None:
    cfg = config(peaked_model_dir, "steps=4", "pg_coef=0", "entropy_coef=1.0", "kl_coef=0", "lr=1e-2",
                 "temperature=0.6")
    train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["entropy"] > rows[0]["entropy"] + 0.05, [r["entropy"] for r in rows]


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = config(tiny_model_dir, "steps=4", "save_every=1", "lr=1e30", "grad_clip=0", "weight_decay=0")
    with pytest.raises(TrainingDiverged):
        train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    kept = sorted((tmp_path / "run/checkpoints").iterdir())
    assert kept and all(not p.name.startswith(".tmp") for p in kept)
    weights = load_file(kept[-1] / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_existing_run_folder_is_not_overwritten(tiny_model_dir: Path, tmp_path: Path) -> None:
    train(config(tiny_model_dir, "steps=1"), tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    with pytest.raises(RlvrError, match="already holds a run"):
        train(config(tiny_model_dir, "steps=1"), tmp_path / "run", reward_fn=has_letter_e, quiet=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("batch_size=4", "mini_batch_size=3"), "mini_batch_size=3"),
        (("max_prompt_tokens=3",), "max_prompt_tokens=3"),
        (("answer= ",), "answer"),
        (("kl_kind=k9",), "kl_kind"),
        (("n=1",), "n=1"),
    ],
)
def test_bad_settings_fail_before_training(tiny_model_dir: Path, tmp_path: Path, extra: tuple, message: str) -> None:
    with pytest.raises(RlvrError, match=message):
        train(config(tiny_model_dir, "steps=1", *extra), tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_unknown_setting_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "stepz=3", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown setting 'stepz'" in err


def test_training_file_with_empty_answer_names_the_row(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": ""}\n')
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", f"train_file={bad}", *BASE[2:], "steps=1"])
    with pytest.raises(RlvrError, match=r"train.jsonl: row 2 has a missing or empty answer"):
        train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)


def test_pool_and_index_pick_examples(tiny_model_dir: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": i, "question": f"{i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(5)))
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", f"pool={pool}", "index=1,3", *BASE[2:], "steps=2"])
    train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    history = json.loads((tmp_path / "run/history.json").read_text())
    assert sorted(history) == ["1", "3"] and all(len(v) == 2 for v in history.values())
    shutil.rmtree(tmp_path / "run")


def test_ppo_with_critic_learns_and_resumes(tiny_model_dir: Path, tmp_path: Path) -> None:
    extra = ("algo=ppo", "n=2", "save_every=1", "critic_lr=1e-2", "kl_coef=0")
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(config(tiny_model_dir, *extra, "steps=3"), whole, reward_fn=has_letter_e, quiet=True)
    rows = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert all("value_loss" in r and math.isfinite(r["value_loss"]) for r in rows)
    assert (whole / "checkpoints/step_3/critic.pt").exists()
    train(config(tiny_model_dir, *extra, "steps=2"), split, reward_fn=has_letter_e, quiet=True)
    train(config(tiny_model_dir, *extra, "steps=3"), split, reward_fn=has_letter_e, quiet=True, resume=True)
    a = torch.load(whole / "checkpoints/step_3/critic.pt")
    b = torch.load(split / "checkpoints/step_3/critic.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert float(a["head.weight"].abs().sum()) > 0  # the value head moved off its zero start


def test_outcome_reward_sits_on_the_last_response_token() -> None:
    from oneshot_rlvr.train.critic import outcome_token_rewards

    mask = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    out = outcome_token_rewards(torch.tensor([1.0, 0.5, 1.0]), mask)
    expected = torch.tensor([[0, 0, 0, 1.0, 0], [0, 0, 0.5, 0, 0], [0, 0, 0, 0, 0]])
    assert torch.equal(out, expected)


def test_validation_runs_and_is_logged(tiny_model_dir: Path, tmp_path: Path) -> None:
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"question": f"What is {i}+1?", "answer": str(i + 1)}) + "\n" for i in range(3)))
    cfg = config(tiny_model_dir, "steps=2", f"val_file={val}", "val_every=1", "val_max_new_tokens=4")
    train(cfg, tmp_path / "run", reward_fn=has_letter_e, quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["val_accuracy"] <= 1.0 and "val_strict_accuracy" in r for r in rows)
    records = (tmp_path / "run/validation/step_2.jsonl").read_text().splitlines()
    assert len(records) == 3 and json.loads(records[0])["gold"] == "1"


def test_lora_trains_adapters_and_resumes_exactly(tiny_model_dir: Path, tmp_path: Path) -> None:
    extra = ("lora_r=4", "save_every=1", "lr=1e-2", "kl_coef=0.01")  # (KL: the reference is the adapter-off base)
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(config(tiny_model_dir, *extra, "steps=3"), whole, reward_fn=has_letter_e, quiet=True)
    train(config(tiny_model_dir, *extra, "steps=1"), split, reward_fn=has_letter_e, quiet=True)
    assert (split / "checkpoints/step_1/adapter_config.json").exists()
    train(config(tiny_model_dir, *extra, "steps=3"), split, reward_fn=has_letter_e, quiet=True, resume=True)
    first = load_file(split / "checkpoints/step_1/adapter_model.safetensors")
    a = load_file(whole / "checkpoints/step_3/adapter_model.safetensors")
    b = load_file(split / "checkpoints/step_3/adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # resumed == unbroken
    assert any(not torch.equal(first[k], b[k]) for k in b)  # and the resumed run did train the adapter
    rows_a = [timing_free(json.loads(x)) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    rows_b = [timing_free(json.loads(x)) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert rows_a == rows_b and len(rows_a) == 3


def test_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(RlvrError, match="not a local folder and could not be fetched"):
        load_tokenizer(str(tmp_path / "no-such-model"))


@pytest.mark.parametrize(("setting", "graphs"), [("true", None), ("false", False)])
def test_rollout_cuda_graphs_setting_reaches_the_engine(tiny_model_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, setting: str,
                                                        graphs: bool | None) -> None:
    """None lets the engine record CUDA graphs when it samples on CUDA; False turns them off."""
    from oneshot_rlvr.rollout import engine
    from oneshot_rlvr.rollout.fast import FastRolloutEngine

    seen: list[object] = []

    class Recording(FastRolloutEngine):
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append(kwargs.get("graphs"))
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "FastRolloutEngine", Recording)
    train(config(tiny_model_dir, "steps=1", f"rollout_cuda_graphs={setting}"), tmp_path / "run", quiet=True)
    assert seen == [graphs]


def test_ppo_takes_its_advantages_from_the_critic_alone(tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from oneshot_rlvr.train import step

    def outcome_estimator_called(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("PPO computed outcome (GRPO) advantages")

    monkeypatch.setattr(step, "outcome_advantages", outcome_estimator_called)
    train(config(tiny_model_dir, "algo=ppo", "n=2", "kl_coef=0", "steps=1"), tmp_path / "run",
          reward_fn=has_letter_e, quiet=True)
    assert (tmp_path / "run" / "checkpoints" / "step_1" / "critic.pt").exists()
