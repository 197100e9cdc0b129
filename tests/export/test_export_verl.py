"""`rlvr export verl`: parquet schema, the reward module in a fresh interpreter, the launch script."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import shared_data_or_skip
from oneshot_rlvr.cli import main
from oneshot_rlvr.config import PRESETS, TrainConfig, apply_overrides
from oneshot_rlvr.data import Problem, load_problems
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.export.verl import export_verl, verl_overrides, verl_schema

PAPER = apply_overrides(TrainConfig(), PRESETS["pi1-qwen2.5-math-1.5b"], where="test")


def _problems(n: int, answer: str = "4") -> list[Problem]:
    return [Problem(id=str(i), prompt=f"What is {i}+4?", answer=answer, source="toy") for i in range(n)]


@pytest.fixture
def exported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    train = tmp_path / "one.jsonl"
    train.write_text(json.dumps({"id": 124, "question": "What is 2+2?", "answer": "4"}) + "\n")
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"problem": f"What is {i}*2?", "answer": str(2 * i)}) + "\n" for i in range(3)))
    out = tmp_path / "verl"
    code = main(["export", "verl", "--train", str(train), "--val", str(val), "--model", "Qwen/Qwen2.5-Math-1.5B",
                 "--out", str(out), "--nodes", "2", "--gpus-per-node", "4", "steps=2000"])
    assert code == 0
    assert "wrote 128 training rows, 3 validation rows" in capsys.readouterr().out
    return out


def test_parquet_files_have_the_verl_schema_and_round_trip(exported: Path) -> None:
    for name in ("train.parquet", "val.parquet"):
        table = pq.read_table(exported / name)
        assert table.schema.equals(verl_schema())
        assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    train = pq.read_table(exported / "train.parquet").to_pylist()
    assert len(train) == 128 and all(row == train[0] for row in train)  # one example fills the batch
    assert train[0] == {
        "data_source": "one",
        "prompt": [{"content": "What is 2+2? Let's think step by step and output the final answer within \\boxed{}.",
                    "role": "user"}],
        "ability": "math",
        "reward_model": {"ground_truth": "4", "style": "rule"},
        "extra_info": {"index": 124, "split": "train"},
    }
    val = pq.read_table(exported / "val.parquet").to_pylist()
    # validation prompts use the evaluation template: the harness's system turn, then the raw problem
    assert [m["role"] for m in val[1]["prompt"]] == ["system", "user"]
    assert val[1]["prompt"][1]["content"] == "What is 1*2?"
    assert [r["extra_info"] for r in val] == [{"index": i, "split": "test"} for i in range(3)]
    # our own loader reads the files back
    back = load_problems(exported / "val.parquet")
    assert [(p.id, p.answer) for p in back] == [("0", "0"), ("1", "2"), ("2", "4")]


def test_schema_matches_the_published_files() -> None:
    shipped = pq.read_schema(shared_data_or_skip("data/train/one_shot_rlvr/pi1_r128.parquet"))
    assert verl_schema().equals(shipped)


REWARD_CHECK = textwrap.dedent("""
    import importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("custom_module", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
    f = module.compute_score
    scores = [
        f("deepscaler", "so the answer is \\\\boxed{12.8}", "12.8", extra_info={"index": 124}),
        f("deepscaler", "so the answer is \\\\boxed{12.7}", "12.8", None),
        f(data_source="deepscaler", solution_str="so the answer is 12.8", ground_truth="12.8"),
        f("deepscaler", "\\\\boxed{3} then \\\\boxed{\\\\frac{1}{2}}", "0.5", extra_info=None, step=7),
        f("deepscaler", "\\\\boxed{2}", ["1", "2"]),
    ]
    print(json.dumps({"heavy": heavy, "scores": scores, "types": [type(s).__name__ for s in scores]}))
""")


def test_reward_module_scores_in_a_fresh_interpreter_without_heavy_imports(exported: Path) -> None:
    result = subprocess.run([sys.executable, "-c", REWARD_CHECK, str(exported / "reward_fn.py")],
                            capture_output=True, text=True, timeout=120, cwd=exported)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    # correct, wrong, unboxed, the last box counts, any of several labels
    assert report["scores"] == [1.0, 0.0, 0.0, 1.0, 1.0]
    assert report["types"] == ["float"] * 5


def _script_args(exported: Path, tmp_path: Path, env: dict[str, str], *extra: str) -> list[str]:
    """Run run_verl.sh with a stand-in python3 that prints the arguments it would hand to verl."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    fake = fake_bin / "python3"
    fake.write_text('#!/usr/bin/env bash\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    full_env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", **env}
    result = subprocess.run(["bash", str(exported / "run_verl.sh"), *extra], capture_output=True, text=True,
                            env=full_env, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _quoted(value: object) -> str:
    """A plain path as run_verl.sh hands it to Hydra: a single-quoted string."""
    return f"'{value}'"


def test_launch_script_is_valid_bash(exported: Path) -> None:
    result = subprocess.run(["bash", "-n", str(exported / "run_verl.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = (exported / "run_verl.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "verl 0.4.1" in text
    assert os.access(exported / "run_verl.sh", os.X_OK)


def test_launch_script_spells_out_the_papers_hyperparameters(exported: Path, tmp_path: Path) -> None:
    argv = _script_args(exported, tmp_path, {})
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    settings = dict(a.split("=", 1) for a in argv[2:])
    expected = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": "False",
        "algorithm.norm_adv_by_std_in_grpo": "True",
        "data.train_batch_size": "128",
        "data.max_prompt_length": "1024",
        "data.max_response_length": "3072",
        "actor_rollout_ref.actor.ppo_mini_batch_size": "128",
        "actor_rollout_ref.actor.ppo_epochs": "1",
        "actor_rollout_ref.actor.use_kl_loss": "True",
        "actor_rollout_ref.actor.kl_loss_coef": "0.001",
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.entropy_coeff": "0.001",
        "actor_rollout_ref.actor.optim.lr": "1e-6",
        "actor_rollout_ref.actor.optim.weight_decay": "0.01",
        "actor_rollout_ref.actor.grad_clip": "1.0",
        "actor_rollout_ref.actor.clip_ratio_low": "0.2",
        "actor_rollout_ref.actor.clip_ratio_high": "0.2",
        "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": "8",
        "actor_rollout_ref.rollout.temperature": "0.6",
        "actor_rollout_ref.rollout.top_p": "1.0",
        "actor_rollout_ref.rollout.val_kwargs.do_sample": "False",
        "actor_rollout_ref.model.path": _quoted("Qwen/Qwen2.5-Math-1.5B"),
        "custom_reward_function.path": _quoted(str(exported / "reward_fn.py")),
        "custom_reward_function.name": "compute_score",
        "data.train_files": _quoted(str(exported / "train.parquet")),
        "data.val_files": _quoted(str(exported / "val.parquet")),
        "trainer.nnodes": "2",
        "trainer.n_gpus_per_node": "4",
        "trainer.total_training_steps": "2000",
        "trainer.total_epochs": "2000",  # 128 rows = one step per pass
        "trainer.save_freq": "20",
        "trainer.test_freq": "20",
    }
    assert {k: settings.get(k) for k in expected} == expected
    assert len(settings) == len(argv) - 2  # every key given once


def test_launch_script_takes_environment_and_extra_overrides(exported: Path, tmp_path: Path) -> None:
    argv = _script_args(exported, tmp_path, {"NNODES": "4", "MODEL": "/models/m"}, "trainer.save_freq=100")
    assert "trainer.nnodes=4" in argv
    assert "actor_rollout_ref.model.path='/models/m'" in argv
    assert argv[-1] == "trainer.save_freq=100"  # after the defaults, so it wins in Hydra


def test_overrides_follow_the_config() -> None:
    cfg = apply_overrides(PAPER, {"entropy_coef": 0.0, "kl_coef": 0.0, "n": 16, "steps": 100}, where="test")
    values = {o.key: o.value for o in verl_overrides(cfg, train_rows=1209)}
    assert values["actor_rollout_ref.actor.entropy_coeff"] == "0.0"
    assert values["actor_rollout_ref.actor.use_kl_loss"] == "False"
    assert values["actor_rollout_ref.rollout.n"] == "16"
    assert values["trainer.total_training_steps"] == "100"
    assert values["trainer.total_epochs"] == "12"  # 1209 // 128 = 9 full batches per pass; ceil(100 / 9) = 12


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"algo": "ppo"}, "algo='ppo'"), ({"adv_norm": "batch"}, "adv_norm='batch'"), ({"pg_coef": 0.0}, "pg_coef"),
     ({"reward": "my_mod:score"}, "reward='my_mod:score'")],
)
def test_settings_verl_cannot_express_are_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(RlvrError, match=message):
        verl_overrides(apply_overrides(PAPER, changes, where="test"), train_rows=128)


def test_export_checks_gpus_and_batch(tmp_path: Path) -> None:
    with pytest.raises(RlvrError, match="3 GPUs do not divide a mini-batch of 128 x 8"):
        export_verl(_problems(128), _problems(2), PAPER, tmp_path, nnodes=1, gpus_per_node=3)
    with pytest.raises(RlvrError, match="100 training rows do not fill one batch of 128"):
        export_verl(_problems(100), _problems(2), PAPER, tmp_path)
    assert not (tmp_path / "run_verl.sh").exists()


def test_command_settings_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = tmp_path / "t.jsonl"
    train.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    base = ["export", "verl", "--train", str(train), "--val", str(train), "--model", "m", "--out", str(tmp_path / "o")]
    assert main([*base, "n=16", "batch_size=64", "mini_batch_size=64"]) == 0
    script = (tmp_path / "o" / "run_verl.sh").read_text()
    assert "actor_rollout_ref.rollout.n=16 " in script and "data.train_batch_size=64 " in script
    assert len(pq.read_table(tmp_path / "o" / "train.parquet")) == 64
    capsys.readouterr()
    assert main([*base, "algo=ppo"]) == 2
    assert "setting algo='ppo': the verl export covers grpo only" in capsys.readouterr().err


HOSTILE = "/m/$(touch PWNED)/`touch PWNED2`/q\"w'e,n=x(1)[2]#3 ${oc.env:HOME} ${x} \\${y} a\\\\'b\\"


_HYDRA_PARSE = """
import json, sys
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
parsed = OverridesParser.create().parse_overrides(json.loads(sys.stdin.read()))
def value(o):
    return OmegaConf.to_container(OmegaConf.create({"v": o.value()}), resolve=True)["v"]
print(json.dumps({"sweep": any(o.is_sweep_override() for o in parsed),
                  "values": {o.key_or_group: value(o) for o in parsed}}))
"""


def _hydra_values(argv: list[str]) -> dict[str, object]:
    """Each override as verl's config will read it: Hydra's override parser, then OmegaConf's resolution.

    hydra-core pins antlr4 4.9, math-verify needs 4.13, so the two cannot share an environment: the parser runs in
    the interpreter HYDRA_PYTHON names (CI makes one), or in this one where hydra-core happens to import."""
    python = os.environ.get("HYDRA_PYTHON")
    if python is None:
        pytest.importorskip("hydra.core.override_parser.overrides_parser",
                            reason="needs hydra-core, which conflicts with math-verify's antlr4: set HYDRA_PYTHON to "
                                   "an interpreter that has it (.ci/run does)")
        python = sys.executable
    done = subprocess.run([python, "-c", _HYDRA_PARSE], input=json.dumps(argv), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert not result["sweep"]  # a comma must not make a sweep
    return dict(result["values"])


def test_hostile_names_reach_verl_unchanged_and_run_nothing(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    train = tmp_path / "t.jsonl"
    train.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    out = tmp_path / "out dir,=(x)[y]#z'q\"$(touch PWNED3)"
    name = "exp 'one',two=$(touch PWNED4)"
    assert main(["export", "verl", "--train", str(train), "--val", str(train), "--model", HOSTILE, "--out", str(out),
                 "--name", name, "batch_size=8", "mini_batch_size=8"]) == 0
    hint = capsys.readouterr().out.strip().splitlines()[-1]
    assert shlex.split(hint.removeprefix("run it with: ")) == ["bash", str(out / "run_verl.sh")]
    script = out / "run_verl.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text('#!/usr/bin/env bash\nprintf "%s\\0" "$@"\n')
    (fake_bin / "python3").chmod(0o755)
    result = subprocess.run(["bash", str(script)], capture_output=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob("PWNED*")) and not list(out.glob("PWNED*"))  # nothing was executed
    argv = result.stdout.decode().split("\0")[:-1]
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    values = _hydra_values(argv[2:])
    assert values["actor_rollout_ref.model.path"] == HOSTILE
    assert values["trainer.experiment_name"] == name
    assert values["data.train_files"] == str(out / "train.parquet")
    assert values["trainer.default_local_dir"] == f"{out}/checkpoints/{name}"
    assert values["trainer.nnodes"] == 1 and values["actor_rollout_ref.rollout.n"] == 8


def test_a_number_from_the_environment_is_checked(exported: Path) -> None:
    result = subprocess.run(["bash", str(exported / "run_verl.sh")], capture_output=True, text=True,
                            env={**os.environ, "NNODES": "2; touch PWNED"}, timeout=60)
    assert result.returncode == 2 and "NNODES" in result.stderr


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return "x"


def test_every_setting_is_exported_or_refused() -> None:
    import dataclasses

    from oneshot_rlvr.export.verl import EXPRESSED, NOT_EXPRESSIBLE, PPO_ONLY, SPEED_ONLY

    groups = [EXPRESSED, SPEED_ONLY, PPO_ONLY, set(NOT_EXPRESSIBLE)]
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(n for g in groups for n in g) == sorted(names)  # each setting in exactly one group
    for name in NOT_EXPRESSIBLE:
        cfg = dataclasses.replace(PAPER, **{name: _changed(getattr(TrainConfig(), name))})
        with pytest.raises(RlvrError, match=f"setting {name}="):
            verl_overrides(cfg, train_rows=128)


@pytest.mark.parametrize("setting", ["lora_r=16", "seed=5", "keep_checkpoints=2", "beta2=0.99"])
def test_the_command_refuses_settings_verl_cannot_express(setting: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    train = tmp_path / "t.jsonl"
    train.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    assert main(["export", "verl", "--train", str(train), "--val", str(train), "--model", "m", "--out",
                 str(tmp_path / "o"), setting]) == 2
    assert f"setting {setting.split('=')[0]}=" in capsys.readouterr().err
    assert not (tmp_path / "o" / "run_verl.sh").exists()


def test_val_every_zero_turns_verl_validation_off() -> None:
    values = {o.key: o.value for o in verl_overrides(apply_overrides(PAPER, {"val_every": 0}, where="t"),
                                                     train_rows=128)}
    assert values["trainer.test_freq"] == "-1" and values["trainer.val_before_train"] == "False"


def test_out_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("x")
    assert main(["export", "verl", "--train", "t", "--val", "v", "--model", "m", "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "taken" in err
