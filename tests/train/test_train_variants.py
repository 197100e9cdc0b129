"""The research settings end to end on the tiny local model: the controls' rewards, train_accuracy against the
gold whatever the reward, frac_zero_std, and the objective variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.train import train

# The random tiny model never writes \boxed{5} in 6 tokens: every response is wrong against the gold, and cut at
# the limit.
BASE = ["problem=What is 2+3?", "answer=5", "batch_size=4", "mini_batch_size=4", "micro_batch_size=8", "n=4",
        "max_new_tokens=6", "lr=1e-3", "device=cpu", "temperature=1.0", "save_every=0"]


def run(model_dir: Path, out: Path, *extra: str) -> list[dict]:
    train(resolve_config(None, None, [f"model={model_dir}", *BASE, *extra]), out, quiet=True)
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_accuracy_is_against_the_gold_whatever_the_reward(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = run(tiny_model_dir, tmp_path / "r", "reward=random", "random_reward_p=1.0", "steps=1")
    assert rows[0]["reward_mean"] == 1.0 and rows[0]["train_accuracy"] == 0.0
    assert rows[0]["frac_zero_std"] == 1.0  # every group all 1: no gradient
    assert json.loads((tmp_path / "r/history.json").read_text()) == {"0": [0.0]}


def test_overlong_penalty_and_truncated_responses_masked_out(tiny_model_dir: Path, tmp_path: Path) -> None:
    # All 6-token responses end at the limit: DAPO's penalty with a 3-token buffer is the full -0.5, and with
    # mask_truncated nothing is left in the loss, so the weights do not move.
    rows = run(tiny_model_dir, tmp_path / "o", "reward=random", "random_reward_p=1.0", "overlong_penalty=0.5",
               "overlong_buffer=3", "mask_truncated=true", "steps=1", "save_every=1", "weight_decay=0")
    assert rows[0]["truncation_rate"] == 1.0
    assert rows[0]["reward_mean"] == pytest.approx(0.5)
    assert rows[0]["grad_norm"] == 0.0
    before = load_file(next(tiny_model_dir.glob("*.safetensors")))
    after = load_file(next((tmp_path / "o/checkpoints/step_1").glob("*.safetensors")))
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("reward", ["format", "incorrect", "majority", "neg_entropy", "self_certainty"])
def test_each_control_reward_trains_a_step(tiny_model_dir: Path, tmp_path: Path, reward: str) -> None:
    rows = run(tiny_model_dir, tmp_path / reward, f"reward={reward}", "steps=1")
    row = rows[0]
    assert row["train_accuracy"] == 0.0 and 0.0 <= row["frac_zero_std"] <= 1.0
    if reward == "majority":
        assert 0.0 <= row["pseudo_label_acc"] <= 1.0
    if reward == "neg_entropy":  # minus a mean entropy: negative, and no larger than log V in size
        assert -6.0 < row["reward_mean"] < 0.0
    if reward == "self_certainty":  # KL(uniform || p) >= 0
        assert row["reward_mean"] >= 0.0


def test_objective_variants_train_and_em_lowers_entropy(tiny_model_dir: Path, tmp_path: Path) -> None:
    rows = run(tiny_model_dir, tmp_path / "v", "ratio_level=sequence", "pos_weight=0.1",
               "entropy_token_quantile=0.2", "mini_batch_size=2", "reward=random", "steps=2")
    assert all(r["grad_norm"] > 0 for r in rows) and rows[1]["ratio_max"] != 1.0  # the second update moved
    em = run(tiny_model_dir, tmp_path / "em", "loss=em", "kl_coef=0", "lr=1e-2", "steps=4")
    assert em[-1]["entropy"] < em[0]["entropy"]


def test_format_reward_raises_the_boxed_rate_while_the_accuracy_stays_at_zero(tmp_path: Path) -> None:
    """The bundled world model boxes about one answer in five; the format reward pays for boxing whatever is
    inside, so against a gold it never writes (999999) the boxed rate climbs and train_accuracy stays 0."""
    from oneshot_rlvr.world.problems import generate_problems

    problem = next(p for p in generate_problems("train", 3) if p.id == "train-00002")
    cfg = resolve_config("tiny-cpu", None, [f"problem={problem.question}", "answer=999999", "reward=format",
                                            "batch_size=4", "mini_batch_size=4", "lr=1e-4", "steps=8",
                                            "save_every=0", "val_every=0"])
    train(cfg, tmp_path / "f", quiet=True)
    rows = [json.loads(x) for x in (tmp_path / "f/metrics.jsonl").read_text().splitlines()]
    boxed = [r["boxed_rate"] for r in rows]
    assert all(r["reward_mean"] == r["boxed_rate"] for r in rows)  # (this reward is the boxed rate itself)
    assert sum(boxed[-3:]) / 3 - sum(boxed[:2]) / 2 >= 0.25, boxed  # measured: 0.19 -> 0.62-0.72
    assert all(r["train_accuracy"] == 0.0 for r in rows)
