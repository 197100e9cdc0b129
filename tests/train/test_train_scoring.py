"""The training reward tied to its problem: `reward=math` on scripted responses, the `reward=` setting's errors,
and the reward contract (one finite number per response) enforced at the step that breaks it."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from oneshot_rlvr.cli import main
from oneshot_rlvr.config import resolve_config
from oneshot_rlvr.data import Problem
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_tokenizer
from oneshot_rlvr.reward import functions
from oneshot_rlvr.reward.functions import check_scores
from oneshot_rlvr.rollout.scripted import ScriptedEngine
from oneshot_rlvr.train import train

HERE = Path(__file__).resolve().parent
N = 4
# Four problems, each with its four scripted samples and the 0/1 reward `reward=math` owes each of them.
# Wrong answers are other problems' golds, so a response graded against the wrong problem changes its reward.
SCRIPT: dict[str, tuple[str, str, list[tuple[str, float]]]] = {
    "a": ("What is 2+3?", "5", [(r"\boxed{5}", 1.0), (r"2+3 = \boxed{5}", 1.0), (r"\boxed{5}.", 1.0),
                                 (r"So the answer is $\boxed{5}$", 1.0)]),
    "b": ("What is 4+4?", "8", [(r"\boxed{8}", 1.0), ("The answer is 8.", 0.0), (r"\boxed{5}", 0.0),
                                 (r"I get \boxed{8}", 1.0)]),
    "c": ("What is 6+1?", "7", [(r"\boxed{7}", 1.0), ("no idea", 0.0), (r"\boxed{5}", 0.0), (r"\boxed{8}", 0.0)]),
    "d": ("What is 9+9?", "18", [(r"\boxed{8}", 0.0), (r"\boxed{5}", 0.0), (r"\boxed{7}", 0.0), ("18", 0.0)]),
}
BASE = ["batch_size=2", "mini_batch_size=2", "micro_batch_size=8", f"n={N}", "max_new_tokens=8", "lr=1e-3",
        "device=cpu", "save_every=0"]


def _train_file(tmp_path: Path, ids: str = "abcd") -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"id": i, "question": SCRIPT[i][0], "answer": SCRIPT[i][1]}) + "\n"
                            for i in ids))
    return path


def _engine(model_dir: Path) -> ScriptedEngine:
    return ScriptedEngine({q: [text for text, _ in samples] for q, _, samples in SCRIPT.values()},
                          tokenizer=load_tokenizer(str(model_dir)))


def _problem_of(prompt: str) -> str:
    (pid,) = [pid for pid, (question, _, _) in SCRIPT.items() if question in prompt]
    return pid


def test_math_reward_scores_each_response_against_its_own_problem(tiny_model_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    graded: list[tuple[list[str], list[str], list[float]]] = []
    real = functions.gold_correct

    def recording(problems: list[Problem], texts: list[str]) -> list[bool]:
        correct = real(problems, texts)
        graded.append(([p.id for p in problems], list(texts), [1.0 if ok else 0.0 for ok in correct]))
        return correct

    # (what `reward=math` grades with, looked up at run time)
    monkeypatch.setattr(functions, "gold_correct", recording)
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", f"train_file={_train_file(tmp_path)}", *BASE,
                                      "steps=4", "reward=math"])
    engine = _engine(tiny_model_dir)
    train(cfg, tmp_path / "run", engine=engine, quiet=True)

    prompts = [p for call in engine.prompts for p in call]
    steps = [[_problem_of(p) for p in prompts[i : i + 2]] for i in range(0, len(prompts), 2)]
    assert len(steps) == 4
    assert sorted(steps[0] + steps[1]) == sorted(steps[2] + steps[3]) == list("abcd")  # two epochs, each once
    assert len(graded) == 4
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    for ids, (problem_ids, texts, scores), row in zip(steps, graded, rows, strict=True):
        # Row b * N + g is sample g of the step's b-th problem: its text, its problem, its reward.
        assert problem_ids == [pid for pid in ids for _ in range(N)]
        assert texts == [text for pid in ids for text, _ in SCRIPT[pid][2]]
        expected = [reward for pid in ids for _, reward in SCRIPT[pid][2]]
        assert scores == expected, (ids, scores)
        assert row["train_accuracy"] == pytest.approx(sum(expected) / len(expected))
        assert row["reward_mean"] == pytest.approx(sum(expected) / len(expected))
    history = json.loads((tmp_path / "run/history.json").read_text())
    # 4, 2, 1 and 0 of the 4 samples right, in each of the two epochs.
    assert history == {"a": [1.0, 1.0], "b": [0.5, 0.5], "c": [0.25, 0.25], "d": [0.0, 0.0]}


@pytest.mark.parametrize(("spec", "message"), [
    ("maths", r"reward='maths': use math, .* or module:function"),
    ("no_such_module_for_rewards:score", r"reward='no_such_module_for_rewards:score': cannot import it"),
    ("scripted_rewards:no_such_function", r"reward='scripted_rewards:no_such_function': cannot import it"),
    (":score", r"reward=':score': cannot import it"),
    ("scripted_rewards:NOT_A_FUNCTION", r"reward='scripted_rewards:NOT_A_FUNCTION': NOT_A_FUNCTION is not callable "
                                        r"\(type int\)"),
])
def test_a_bad_reward_setting_is_one_line_before_training(tiny_model_dir: Path, tmp_path: Path, spec: str,
                                                          message: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    out = tmp_path / "run"
    args = ["train", f"model={tiny_model_dir}", "problem=What is 2+3?", "answer=5", *BASE, "steps=1",
            f"reward={spec}", "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("rlvr train: error: setting ") and re.search(message, err), err
    assert not (out / "metrics.jsonl").exists()


def test_a_non_finite_reward_stops_the_step_naming_the_reward_and_the_row(tiny_model_dir: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    cfg = resolve_config(None, None, [f"model={tiny_model_dir}", f"train_file={_train_file(tmp_path, 'ab')}", *BASE,
                                      "steps=2", "reward=scripted_rewards:nan_for_the_second_sample_of_8"])
    engine = _engine(tiny_model_dir)
    with pytest.raises(RlvrError) as caught:
        train(cfg, tmp_path / "run", engine=engine, quiet=True)
    row = [_problem_of(p) for p in engine.prompts[0]].index("b") * N + 1  # problem b's second sample
    assert str(caught.value) == (f"step 1: reward scripted_rewards:nan_for_the_second_sample_of_8 gave nan for "
                                 f"response {row} (problem 'b', sample 2 of 4); every score must be a finite number")
    metrics = tmp_path / "run/metrics.jsonl"
    assert not metrics.exists() or not metrics.read_text()  # no step was logged, no NaN reached a loss


PROBLEMS = [Problem("p1", "Q1", "1")] * 2 + [Problem("p2", "Q2", "2")] * 2
TEXTS = ["w", "x", "y", "z"]


@pytest.mark.parametrize(("scores", "message"), [
    ([1.0, 0.0, 1.0], "returned 3 scores for 4 responses"),
    ([1.0, 0.0, 1.0, 1.0, 0.0], "returned 5 scores for 4 responses"),
    (None, "returned a NoneType, not one number per response"),
    (1.0, "returned a float, not one number per response"),
    ([1.0, 0.0, math.inf, 1.0], r"gave inf for response 2 \(problem 'p2', sample 1 of 2\)"),
    ([-math.inf, 0.0, 1.0, 1.0], r"gave -inf for response 0 \(problem 'p1', sample 1 of 2\)"),
    ([1.0, 0.0, 1.0, math.nan], r"gave nan for response 3 \(problem 'p2', sample 2 of 2\)"),
    ([1.0, "yes", 1.0, 1.0], r"gave 'yes' for response 1 \(problem 'p1', sample 2 of 2\)"),
    ([1.0, None, 1.0, 1.0], r"gave None for response 1 \(problem 'p1', sample 2 of 2\)"),
    ([1.0, 1.0, "1", 1.0], r"gave '1' for response 2 \(problem 'p2', sample 1 of 2\)"),  # (a string, not a number)
])
def test_the_reward_contract_is_one_finite_number_per_response(scores: object, message: str) -> None:
    with pytest.raises(RlvrError, match=rf"^step 7: reward mine:broken {message}"):
        check_scores(scores, "mine:broken", PROBLEMS, 2, step=7)


def test_numbers_of_any_kind_are_accepted_as_floats() -> None:
    import torch

    mixed = [True, 0, torch.tensor(0.5), 1]  # bool, int, a 0-d tensor
    assert check_scores(mixed, "mine:mixed", PROBLEMS, 2, step=1) == [1.0, 0.0, 0.5, 1.0]
