"""Everything verl needs to run our recipe on many GPUs: parquet data, a reward module, a launch script.

The parquet rows use the schema of the published 1-shot RLVR files (data_source, prompt, ability,
reward_model, extra_info). The reward module scores with oneshot-rlvr's own training reward. The launch
script spells out every hyperparameter of the run's TrainConfig (by default the paper's headline
recipe) as a verl Hydra override, with key names of verl 0.4.1 (`verl/trainer/config/ppo_trainer.yaml`).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.data.problems import Problem
from oneshot_rlvr.data.templates import messages_for
from oneshot_rlvr.errors import RlvrError

VERL_VERSION = "0.4.1"
VERL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
KL_TYPES = {"k1": "kl", "k2": "mse", "k3": "low_var_kl"}


def verl_schema() -> Any:
    """The pyarrow schema of the published verl training files (field order included)."""
    import pyarrow as pa

    return pa.schema([
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
        ("extra_info", pa.struct([("index", pa.int64()), ("split", pa.string())])),
    ])


def _int_id(problem: Problem, position: int) -> int:
    try:
        return int(problem.id)
    except ValueError:  # ids like "test/algebra/1.json": the row position keeps the index an integer
        return position


def verl_rows(problems: Sequence[Problem], *, template: str, split: str) -> list[dict[str, Any]]:
    """verl rows: the prompt rendered as chat turns by `template`, the label as a rule-style ground truth."""
    rows = []
    for position, problem in enumerate(problems):
        ability = problem.meta.get("ability")
        rows.append({
            "data_source": problem.source or "oneshot_rlvr",
            "prompt": [{"content": m["content"], "role": m["role"]} for m in messages_for(problem.prompt, template)],
            "ability": ability if isinstance(ability, str) and ability else "math",
            "reward_model": {"ground_truth": problem.answer, "style": "rule"},
            "extra_info": {"index": _int_id(problem, position), "split": split},
        })
    return rows


def write_verl_file(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """Write rows as parquet (`.parquet`) or JSON Lines (`.jsonl`), creating the folder."""
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise RlvrError(f"{out}: output must end in .parquet or .jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(rows), schema=verl_schema()), out)
    else:
        with out.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


REWARD_MODULE = '''\
"""verl reward function written by `rlvr export verl`.

verl loads this file by path (custom_reward_function.path) and calls compute_score once per response.
The score is oneshot-rlvr's training reward: 1.0 when the last boxed answer of the response equals the
label (string, numeric or symbolic equality), else 0.0; no format or length term. Every node that
scores responses needs the package: pip install -e . in a oneshot-rlvr checkout
"""

from __future__ import annotations

from typing import Any

try:
    from oneshot_rlvr.reward.adapters import compute_score as _math_score
except ImportError as err:  # one line that says what to install on the workers
    raise ImportError(
        "reward_fn.py needs oneshot-rlvr on every verl node: pip install -e . in a oneshot-rlvr checkout"
    ) from err


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None, **kwargs: Any
) -> float:
    """1.0 if the response's last boxed answer equals ground_truth (or one of a list of them), else 0.0."""
    return float(_math_score(data_source, solution_str, ground_truth, extra_info))
'''


@dataclass(frozen=True)
class Override:
    """One Hydra override of verl's config. A `shell` value is expanded by bash when the script runs (it names
    the script's variables) and handed to Hydra as a quoted string, so that any path survives both; other
    values are literal (numbers, booleans, names we choose) and only shell-quoted."""

    key: str
    value: str
    why: str = ""
    shell: bool = False
    number: bool = False
    """A shell value the script has checked to be a whole number: handed to Hydra as it is."""

    def line(self) -> str:
        if self.shell and self.number:
            text = f'"{self.key}={self.value}"'
        elif self.shell:
            text = f'"{self.key}=$(hydra_str "{self.value}")"'
        else:
            text = shlex.quote(f"{self.key}={self.value}")
        return f"    {text}" + (f"  # {self.why}" if self.why else "")


# Bash: a value as a single-quoted Hydra string that verl reads back unchanged. Hydra's quoted strings escape
# the quote and the backslashes right before a quote or the end; OmegaConf then reads ${...} as an
# interpolation unless escaped as \${...} (with the backslashes before it doubled). Commas, =, brackets, # and
# spaces need nothing more inside quotes.
HYDRA_STR = r"""hydra_str() {
  local s=$1 out="" bs="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    if [[ $c == "\\" ]]; then bs+=$c; continue; fi
    if [[ $c == "'" ]]; then out+="$bs$bs\\'"
    elif [[ $c == '$' && ${s:i+1:1} == '{' ]]; then out+="$bs$bs\\\$"
    else out+="$bs$c"; fi
    bs=""
  done
  printf "'%s'" "$out$bs$bs"
}"""


def _num(x: float) -> str:
    """1e-06 -> "1e-6", 0.2 -> "0.2", 1 -> "1.0": floats as people write them in Hydra overrides."""
    return repr(float(x)).replace("e-0", "e-").replace("e+0", "e+")


# Every TrainConfig setting sits in one of the four groups below (a test checks that none is missing).
EXPRESSED = frozenset({
    "model", "train_file", "question_field", "answer_field", "skip_bad_rows", "template", "max_prompt_tokens",
    "n", "temperature", "top_p", "top_k", "max_new_tokens", "reward", "algo", "adv_norm", "loss_agg", "pg_coef",
    "entropy_coef", "kl_coef", "kl_kind", "clip_low", "clip_high", "lr", "warmup_steps", "weight_decay", "grad_clip",
    "batch_size", "mini_batch_size", "ppo_epochs", "steps", "save_every", "val_file", "val_every", "val_limit",
    "val_template", "stop",
})
"""Settings the export writes: verl overrides in run_verl.sh, or the parquet rows (template, fields, limit); stop
must be eos, where verl's vLLM rollout stops."""

SPEED_ONLY = frozenset({
    "device", "autocast", "attn_implementation", "gradient_checkpointing", "micro_batch_size", "micro_batch_tokens",
    "rollout_batch_rows", "continuous_batching", "rollout_cuda_graphs", "rollout_dtype", "keep_trainer_state",
    "trust_checkpoint",
})
"""Settings of our trainer alone (its speed, memory or disk use, how it opens its own run folders); verl (FSDP,
vLLM) chooses its own."""

PPO_ONLY = frozenset({"vf_coef", "critic_lr", "value_clip", "gamma", "lam"})
"""Settings of algo=ppo, which the export refuses; GRPO does not read them."""

NOT_EXPRESSIBLE: dict[str, str] = {
    "dtype": "verl keeps float32 master weights under FSDP mixed precision",
    "lora_r": "the export trains all weights",
    "lora_alpha": "the export trains all weights",
    "pool": "give the training problems with --train",
    "index": "give the training problems with --train",
    "problem": "give the training problems with --train",
    "answer": "give the training problems with --train",
    "beta1": "verl 0.4.1's actor optimizer has no betas setting",
    "beta2": "verl 0.4.1's actor optimizer has no betas setting",
    "seed": "verl 0.4.1 seeds its sampling and data order on its own",
    "keep_checkpoints": "the launch script keeps every verl checkpoint",
    "val_max_new_tokens": "verl validates with the training response length (max_new_tokens)",
    "random_reward_p": "the exported reward_fn.py is the math reward",
    "entropy_reward_level": "the exported reward_fn.py is the math reward",
    "loss": "the export writes verl's clipped policy-gradient loss",
    "ratio_level": "the export writes verl's per-token ratio and clip",
    "pos_weight": "the export does not map W-REINFORCE's weighting",
    "entropy_token_quantile": "the export does not map the high-entropy token mask",
    "mask_truncated": "the export does not map DAPO's truncation mask",
    "overlong_penalty": "the export does not map DAPO's overlong penalty",
    "overlong_buffer": "the export does not map DAPO's overlong penalty",
    "report_to": "the launch script logs to verl's console logger",
    "tracking_project": "the launch script logs to verl's console logger",
    "tracking_name": "the launch script logs to verl's console logger",
}
"""Settings verl cannot express from this export: any value but the default is an error naming it."""


def check_expressible(cfg: TrainConfig) -> None:
    """Refuse a setting the launch script could not carry, rather than write a script that silently drops it."""
    defaults = TrainConfig()
    for name, why in NOT_EXPRESSIBLE.items():
        if getattr(cfg, name) != getattr(defaults, name):
            raise RlvrError(f"setting {name}={getattr(cfg, name)!r}: the verl export cannot express it ({why}); "
                            f"leave it at its default {getattr(defaults, name)!r}")


def verl_overrides(cfg: TrainConfig, *, train_rows: int) -> list[Override]:
    """The run's settings as verl 0.4.1 overrides, key by key; settings verl cannot express are an error."""
    check_expressible(cfg)
    if cfg.algo != "grpo":
        raise RlvrError(f"setting algo={cfg.algo!r}: the verl export covers grpo only")
    if cfg.adv_norm == "batch":
        raise RlvrError("setting adv_norm='batch' has no verl 0.4 equivalent (use group or none)")
    if cfg.reward != "math":
        raise RlvrError(f"setting reward={cfg.reward!r}: the exported reward_fn.py scores with the math reward only")
    if cfg.pg_coef != 1.0:
        raise RlvrError(f"setting pg_coef={cfg.pg_coef}: verl has no policy-gradient coefficient")
    if cfg.stop != "eos":
        raise RlvrError(f"setting stop={cfg.stop!r}: verl's vLLM rollout stops at the model's EOS ids only (stop=eos, "
                        "the pi1 preset's)")
    steps_per_epoch = train_rows // cfg.batch_size  # verl's loader drops the last partial batch
    epochs = math.ceil(cfg.steps / steps_per_epoch)
    a, r = "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    o = Override
    return [
        o("algorithm.adv_estimator", "grpo", "GRPO: (r - group mean) / (group std + 1e-6)"),
        o("algorithm.norm_adv_by_std_in_grpo", str(cfg.adv_norm == "group"), "divide by the group std"),
        o("algorithm.use_kl_in_reward", "False", "KL goes in the loss, not the reward"),
        o("data.train_files", "${HERE}/train.parquet", shell=True),
        o("data.val_files", "${HERE}/val.parquet", shell=True),
        o("data.prompt_key", "prompt"),
        o("data.train_batch_size", str(cfg.batch_size), "prompts per RL step (the example repeated)"),
        o("data.max_prompt_length", str(cfg.max_prompt_tokens)),
        o("data.max_response_length", str(cfg.max_new_tokens)),
        o("data.filter_overlong_prompts", "True"),
        o("data.truncation", "error"),
        o("actor_rollout_ref.model.path", "${MODEL}", shell=True),
        o("actor_rollout_ref.model.enable_gradient_checkpointing", "True", "memory only"),
        o("actor_rollout_ref.model.use_remove_padding", "True", "speed only"),
        o(f"{a}.strategy", "fsdp"),
        o(f"{a}.optim.lr", _num(cfg.lr), "constant AdamW learning rate"),
        o(f"{a}.optim.lr_warmup_steps", str(cfg.warmup_steps)),
        o(f"{a}.optim.warmup_style", "constant"),
        o(f"{a}.optim.weight_decay", _num(cfg.weight_decay)),
        o(f"{a}.ppo_mini_batch_size", str(cfg.mini_batch_size), "prompts per optimizer step"),
        o(f"{a}.ppo_epochs", str(cfg.ppo_epochs)),
        o(f"{a}.use_dynamic_bsz", "True", "micro-batches packed by tokens (memory only)"),
        o(f"{a}.ppo_max_token_len_per_gpu", str(4 * (cfg.max_prompt_tokens + cfg.max_new_tokens))),
        o(f"{a}.grad_clip", _num(cfg.grad_clip)),
        o(f"{a}.clip_ratio_low", _num(cfg.clip_low)),
        o(f"{a}.clip_ratio_high", _num(cfg.clip_high)),
        o(f"{a}.loss_agg_mode", cfg.loss_agg),
        o(f"{a}.use_kl_loss", str(cfg.kl_coef > 0)),
        o(f"{a}.kl_loss_coef", _num(cfg.kl_coef)),
        o(f"{a}.kl_loss_type", KL_TYPES[cfg.kl_kind], "k3 estimator"),
        o(f"{a}.entropy_coeff", _num(cfg.entropy_coef), "stated: verl's default became 0 in 0.4"),
        o(r + ".name", "vllm"),
        o(r + ".n", str(cfg.n), "responses per prompt (the group size)"),
        o(r + ".temperature", _num(cfg.temperature), "also divides the logits of log-probs and entropy"),
        o(r + ".top_p", _num(cfg.top_p)),
        o(r + ".top_k", str(cfg.top_k or -1), "-1 = off for vLLM"),
        o(r + ".tensor_model_parallel_size", "${ROLLOUT_TP}", shell=True, number=True),
        o(r + ".gpu_memory_utilization", "0.6"),
        o(r + ".val_kwargs.do_sample", "False", "greedy validation"),
        o(r + ".val_kwargs.temperature", "0"),
        o(r + ".val_kwargs.n", "1"),
        o("custom_reward_function.path", "${HERE}/reward_fn.py", shell=True),
        o("custom_reward_function.name", "compute_score"),
        o("reward_model.reward_manager", "naive"),
        o("trainer.nnodes", "${NNODES}", shell=True, number=True),
        o("trainer.n_gpus_per_node", "${GPUS_PER_NODE}", shell=True, number=True),
        o("trainer.total_training_steps", str(cfg.steps)),
        o("trainer.total_epochs", str(epochs), f"{steps_per_epoch} step(s) per pass over train.parquet"),
        o("trainer.save_freq", str(cfg.save_every or -1)),
        o("trainer.test_freq", str(cfg.val_every or -1), "-1 = off"),
        o("trainer.val_before_train", str(cfg.val_every > 0)),
        o("trainer.critic_warmup", "0"),
        o("trainer.logger", "[console]"),
        o("trainer.project_name", "oneshot_rlvr"),
        o("trainer.experiment_name", "${EXPERIMENT}", shell=True),
        o("trainer.default_local_dir", "${HERE}/checkpoints/${EXPERIMENT}", shell=True),
    ]


def launch_script(overrides: Sequence[Override], *, model: str, nnodes: int, gpus_per_node: int,
                  name: str) -> str:
    """A bash script running `python3 -m verl.trainer.main_ppo` with the overrides, one per line."""
    lines = [
        "#!/usr/bin/env bash",
        f"# 1-shot RLVR on verl {VERL_VERSION}: GRPO with every hyperparameter spelled out.",
        "# Written by `rlvr export verl`. Key names are those of verl "
        f"{VERL_VERSION} (verl/trainer/config/ppo_trainer.yaml).",
        "# One node: bash run_verl.sh. Several nodes: start a Ray cluster first (head node:",
        "# `ray start --head`; every other node: `ray start --address=HEAD_IP:6379`), then run this",
        "# script on the head node with NNODES set. Arguments are extra Hydra overrides (the last wins).",
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        # Written values are shell-quoted, so a name like $(cmd) or one with quotes stays a name.
        f'[[ -n "${{MODEL:-}}" ]] || MODEL={shlex.quote(model)}',
        f'[[ -n "${{EXPERIMENT:-}}" ]] || EXPERIMENT={shlex.quote(name)}',
        f'NNODES="${{NNODES:-{int(nnodes)}}}"',
        f'GPUS_PER_NODE="${{GPUS_PER_NODE:-{int(gpus_per_node)}}}"',
        'ROLLOUT_TP="${ROLLOUT_TP:-1}"',
        "for var in NNODES GPUS_PER_NODE ROLLOUT_TP; do",
        '  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || { echo "run_verl.sh: $var=${!var}: not a number" >&2; exit 2; }',
        "done",
        "",
        HYDRA_STR,
        "",
        "args=(",
        *(ov.line() for ov in overrides),
        ")",
        "",
        'exec python3 -m verl.trainer.main_ppo "${args[@]}" "$@"',
        "",
    ]
    return "\n".join(lines)


def export_verl(
    train: Sequence[Problem], val: Sequence[Problem], cfg: TrainConfig, out: Path, *,
    nnodes: int = 1, gpus_per_node: int = 8, name: str = "oneshot_rlvr",
) -> dict[str, Path]:
    """Write train.parquet, val.parquet, reward_fn.py and run_verl.sh into `out`; returns their paths.

    `train` is used as given (repeat a single example to the batch first); it must fill a batch.
    """
    if nnodes < 1 or gpus_per_node < 1:
        raise RlvrError("--nodes and --gpus-per-node must be at least 1")
    world = nnodes * gpus_per_node
    # verl splits every mini-batch of responses evenly over all GPUs.
    if (cfg.mini_batch_size * cfg.n) % world:
        raise RlvrError(
            f"--nodes {nnodes} x --gpus-per-node {gpus_per_node} = {world} GPUs do not divide a mini-batch "
            f"of {cfg.mini_batch_size} x {cfg.n} responses evenly"
        )
    if len(train) < cfg.batch_size:
        raise RlvrError(f"{len(train)} training rows do not fill one batch of {cfg.batch_size} prompts")
    overrides = verl_overrides(cfg, train_rows=len(train))
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "train": write_verl_file(verl_rows(train, template=cfg.template, split="train"), out / "train.parquet"),
        "val": write_verl_file(verl_rows(val, template=cfg.val_template, split="test"), out / "val.parquet"),
        "reward": out / "reward_fn.py",
        "script": out / "run_verl.sh",
    }
    paths["reward"].write_text(REWARD_MODULE, encoding="utf-8")
    script = launch_script(overrides, model=cfg.model, nnodes=nnodes, gpus_per_node=gpus_per_node, name=name)
    paths["script"].write_text(script, encoding="utf-8")
    paths["script"].chmod(0o755)
    return paths
