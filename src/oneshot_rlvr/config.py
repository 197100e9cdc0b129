"""Every training setting in one dataclass; presets; YAML files and KEY=VALUE overrides.

The attribute docstrings below are the documentation, and the `# --- name` comments their groups:
`rlvr train --help-config` prints both. The resolved config is written to RUN/config.yaml, and nothing
else in the code holds a setting.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from oneshot_rlvr.errors import RlvrError

if TYPE_CHECKING:
    from oneshot_rlvr.models.load import LoadOptions

LOSSES = ("pg", "em")
"""Values of the `loss` setting: the policy gradient, or entropy minimisation (`train.update`)."""
ROLLOUT_DTYPES = ("auto", "bfloat16", "float32")
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "eager", "flash_attention_2")
"""Values of `attn_implementation` (auto: see the field and `TrainConfig.load_options`)."""


def setting_choices() -> dict[str, tuple[str, ...]]:
    """Each choice setting's allowed values, taken from the module that defines them. (Imported here, not at the
    top: the algo and precision modules import torch, which reading a config does not need.)"""
    from oneshot_rlvr.algo.advantages import ALGOS, NORMS
    from oneshot_rlvr.algo.losses import AGG_MODES, KL_KINDS, RATIO_LEVELS
    from oneshot_rlvr.data.templates import TEMPLATES
    from oneshot_rlvr.models.precision import AUTOCAST_CHOICES
    from oneshot_rlvr.reward.functions import ENTROPY_LEVELS

    return {"algo": ALGOS, "adv_norm": NORMS, "loss_agg": AGG_MODES, "kl_kind": KL_KINDS,
            "autocast": AUTOCAST_CHOICES, "loss": LOSSES, "ratio_level": RATIO_LEVELS,
            "entropy_reward_level": ENTROPY_LEVELS, "rollout_dtype": ROLLOUT_DTYPES,
            "attn_implementation": ATTN_IMPLEMENTATIONS, "template": TEMPLATES, "val_template": TEMPLATES}


@dataclass
class TrainConfig:
    """Settings of one RLVR training run (defaults: the paper's pi1 recipe on Qwen2.5-Math-1.5B)."""

    # --- data
    train_file: str = ""
    """Problem file (JSONL with question/answer fields, JSON, or verl parquet); small sets are repeated to the batch."""
    pool: str = ""
    """A problem pool to pick examples from with `index` (e.g. DSR-sub parquet)."""
    index: str = ""
    """Example id(s) in `pool`, comma-separated (124 = pi1; 124,682 = pi1 + pi13)."""
    problem: str = ""
    """An inline training problem (with `answer`)."""
    answer: str = ""
    """The gold answer of the inline `problem`."""
    question_field: str = ""
    """Field holding the question in the problem files (default: question/problem/prompt...)."""
    answer_field: str = ""
    """Field holding the gold answer (default: answer/final_answer/reward_model.ground_truth...)."""
    skip_bad_rows: bool = False
    """Leave out problem-file rows without question or answer (each named in a warning) instead of stopping."""
    template: str = "oneshot-train"
    """Prompt template for training: oneshot-train, qwen25-math-cot or plain."""
    max_prompt_tokens: int = 1024
    """Longest allowed prompt; longer prompts are an error before training starts."""

    # --- model
    model: str = "Qwen/Qwen2.5-Math-1.5B"
    """Policy model: local folder, Hugging Face hub id, or builtin:tiny."""
    dtype: str = "float32"
    """Dtype of the trained weights (float32 master weights, as the paper; bfloat16 halves memory)."""
    lora_r: int = 0
    """LoRA rank; 0 trains all weights."""
    lora_alpha: int = 32
    """LoRA alpha."""

    # --- rollout
    n: int = 8
    """Samples per prompt (the group size G)."""
    temperature: float = 0.6
    """Sampling temperature; log-probs and entropy use logits / temperature too."""
    top_p: float = 1.0
    """Nucleus sampling."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    max_new_tokens: int = 3072
    """Longest response."""
    rollout_dtype: str = "auto"
    """Dtype of the weights that sample: auto (bfloat16 on GPU, the trained dtype on CPU), bfloat16 or float32.
    A bfloat16 copy is refreshed from the trained weights before every rollout."""
    stop: str = "chat"
    """What ends a rollout (and a validation response), comma-separated: eos (the tokenizer's EOS and the model's
    generation_config EOS ids: what the official run's vLLM rollouts stopped at), chat (eos plus the end-of-turn
    markers <|im_end|>, <|endoftext|>, <|eot_id|> the tokenizer has), harness (eos plus </s>, <|im_end|>,
    <|endoftext|>: where rlvr eval stops, as the Qwen2.5-Math harness), a token (<|im_end|>) or a token id.
    config.yaml records the resolved set as tokens or ids. See docs/official-protocol.md."""

    # --- objective
    reward: str = "math"
    """Reward: math (1 if the last \\boxed{} equals the answer, the paper's); the controls random (Bernoulli
    random_reward_p), format (1 for a complete \\boxed{}), incorrect (graded against a wrong label), majority
    (TTRL's majority-vote pseudo-label), neg_entropy (EM-RL), self_certainty (Intuitor); or module:function
    taking (problems, responses) and returning one float per response. train_accuracy is always against the
    gold (docs/research-controls.md)."""
    algo: str = "grpo"
    """grpo (the paper); rloo (leave-one-out baseline); ppo (critic + GAE); dr_grpo, an alias of grpo with
    adv_norm=none (advantages without std normalisation; Dr. GRPO also sets loss_agg=seq-mean-token-sum-norm).
    The estimators are named in `oneshot_rlvr.algo.advantages.OUTCOME_ESTIMATORS`."""
    adv_norm: str = "group"
    """GRPO advantage normalisation: group, batch or none (none is Dr. GRPO's; algo=dr_grpo sets it)."""
    loss_agg: str = "token-mean"
    """Loss aggregation: token-mean, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm."""
    pg_coef: float = 1.0
    """Policy-gradient coefficient; 0 gives the entropy-only ablation."""
    entropy_coef: float = 0.001
    """Entropy bonus coefficient (positive raises entropy)."""
    kl_coef: float = 0.001
    """KL-to-reference coefficient in the loss; 0 skips the reference model."""
    kl_kind: str = "k3"
    """KL estimator: k1, k2 or k3 (verl's low_var_kl)."""
    clip_low: float = 0.2
    """PPO ratio clip below 1."""
    clip_high: float = 0.2
    """PPO ratio clip above 1 (raise for clip-higher)."""
    vf_coef: float = 0.5
    """PPO only: value-loss coefficient."""
    critic_lr: float = 1e-5
    """PPO only: learning rate of the critic."""
    value_clip: float = 0.2
    """PPO only: clip of the value update around the old values."""
    gamma: float = 1.0
    """PPO only: discount."""
    lam: float = 1.0
    """PPO only: GAE lambda."""
    random_reward_p: float = 0.5
    """reward=random: the probability of a reward of 1, drawn per response from (seed, step, row)."""
    entropy_reward_level: str = "token"
    """reward=neg_entropy: token (minus the mean token entropy of the response) or sequence (its mean
    sampled-token log-prob, minus the sequence entropy per token)."""
    loss: str = "pg"
    """pg (the clipped policy gradient) or em (one-shot entropy minimisation: the token entropy of the model's
    own samples as the whole loss, plus the KL term; no reward, pg_coef and entropy_coef unused)."""
    ratio_level: str = "token"
    """Importance ratio and clip per token (PPO/GRPO) or per sequence (GSPO: the mean token log-ratio of each
    response, clipped for the whole response)."""
    pos_weight: float = 1.0
    """W-REINFORCE lambda: positive advantages are multiplied by it (1 = off; 0 keeps only negative samples)."""
    entropy_token_quantile: float = 0.0
    """80/20: the policy-gradient loss only on this top fraction of tokens by entropy, per micro-batch
    (0.2 = the paper's; 0 = off, every token)."""
    mask_truncated: bool = False
    """DAPO: responses cut at max_new_tokens add nothing to the loss."""
    overlong_penalty: float = 0.0
    """DAPO's soft overlong punishment: the reward falls linearly by up to this much over the last
    overlong_buffer tokens before max_new_tokens (0 = off)."""
    overlong_buffer: int = 0
    """DAPO: the length of that buffer in tokens (DAPO: 4096 of 20480)."""

    # --- optimisation
    lr: float = 1e-6
    """AdamW learning rate (constant)."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.999
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Clip the global gradient norm (0 = off)."""
    batch_size: int = 128
    """Prompts per RL step (the one example is repeated to this many rows, each its own group)."""
    mini_batch_size: int = 128
    """Prompts per optimizer update; batch_size / mini_batch_size updates per step and PPO epoch."""
    ppo_epochs: int = 1
    """Passes over each rollout batch."""
    steps: int = 2000
    """RL steps."""
    seed: int = 0
    """Seed for data order, sampling and initialisation."""

    # --- checkpoints
    save_every: int = 20
    """Checkpoint every N steps (0 = only at the end)."""
    keep_checkpoints: int = 0
    """Keep only the newest N checkpoints (0 = keep all)."""
    keep_trainer_state: int = 1
    """Keep what only a resume reads (trainer_state.pt: AdamW's moments, twice the model's size, and the RNG and
    data position) in the newest N checkpoints; older ones keep the model and tokenizer, which is what
    `rlvr eval --run` reads (0 = keep it in every checkpoint, to resume from any)."""
    trust_checkpoint: bool = False
    """Resume from a trainer_state.pt that holds pickled Python objects beyond tensors and plain data (loading
    those can run code: only for a run folder from a source you trust). Only the command line or your own
    --config file sets it; a run folder's config.yaml cannot vouch for its own checkpoints."""

    # --- evaluation
    val_file: str = ""
    """Held-out problem file for periodic greedy validation."""
    val_every: int = 20
    """Validate every N steps (when val_file is set); also before the first step (0 = off)."""
    val_limit: int = 0
    """Use only the first N validation problems (0 = all)."""
    val_template: str = "qwen25-math-cot"
    """Prompt template for validation."""
    val_max_new_tokens: int = 0
    """Longest validation response (0 = max_new_tokens)."""
    report_to: str = ""
    """Stream every metrics row (validation included) and `rlvr eval --run` results live to trackers:
    comma-separated wandb, tensorboard, mlflow (empty or none: metrics.jsonl alone). Each is an optional package:
    the [tracking] extra. Only rank 0 reports; a tracker that fails mid-run is switched off with
    one warning (see docs/tracking.md)."""
    tracking_project: str = ""
    """W&B project and MLflow experiment of the run (empty: oneshot-rlvr)."""
    tracking_name: str = ""
    """The run's name in the trackers (empty: the run folder's name)."""

    # --- performance
    device: str = "auto"
    """cpu, cuda, cuda:N or auto (cuda when available; the local rank's GPU under torchrun)."""
    autocast: str = "auto"
    """Compute dtype for forward passes: bf16 (autocast), none (the weights' dtype), or auto: bf16 where the device
    multiplies bf16 natively (GPUs from Ampere on, CPUs with AVX-512 or AMX), none elsewhere (on an AVX2-only CPU
    bf16 autocast made a step 10x slower). The run's config.yaml records what auto chose."""
    attn_implementation: str = "auto"
    """Attention kernel of the trained model: auto (eager on CPU, where PyTorch's SDPA kernel makes a bf16
    forward+backward about 1.7x slower; sdpa on GPU), sdpa, eager or flash_attention_2."""
    gradient_checkpointing: bool = False
    """Recompute activations during backward to save memory."""
    micro_batch_size: int = 8
    """Rows (responses) per forward/backward pass; gradients accumulate over micro-batches."""
    micro_batch_tokens: int = 0
    """If > 0, pack micro-batches by this token budget instead of micro_batch_size."""
    rollout_batch_rows: int = 256
    """Most rows generated at once (with continuous batching: the decode slots)."""
    continuous_batching: bool = True
    """Refill a finished row's slot at once with the next waiting row (`oneshot_rlvr.rollout.fast.slots`). False runs
    the rows in chunks of rollout_batch_rows, each until its longest row ends (for comparison). The samples are
    the same either way: each row draws from its own (seed, step, row) stream."""
    rollout_cuda_graphs: bool = True
    """On CUDA, replay each decode step from a CUDA graph (Qwen2 / Llama / Mistral; `oneshot_rlvr.rollout.fast.graphs`).
    False launches the same steps one kernel at a time (slower; for debugging)."""

    def validate(self, world_size: int = 1) -> None:
        """Check settings that would otherwise fail mid-run; errors name the setting."""
        for key, allowed in setting_choices().items():
            if getattr(self, key) not in allowed:
                raise RlvrError(f"setting {key}={getattr(self, key)!r}: choose from {', '.join(allowed)}")
        for key in ("n", "batch_size", "mini_batch_size", "micro_batch_size", "ppo_epochs", "steps",
                    "max_new_tokens", "rollout_batch_rows", "max_prompt_tokens"):
            if getattr(self, key) < 1:
                raise RlvrError(f"setting {key}={getattr(self, key)} must be at least 1")
        for key in ("save_every", "keep_checkpoints", "keep_trainer_state", "val_every", "val_limit", "top_k",
                    "warmup_steps", "micro_batch_tokens", "val_max_new_tokens", "lora_r"):
            if getattr(self, key) < 0:
                raise RlvrError(f"setting {key}={getattr(self, key)} must be 0 or more")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise RlvrError(f"setting lr={self.lr} must be a positive number")
        # Sampling settings are used only after the model has loaded: check them before.
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise RlvrError(f"setting temperature={self.temperature} must be a positive number (training samples)")
        if not 0 < self.top_p <= 1:
            raise RlvrError(f"setting top_p={self.top_p} must be in (0, 1]")
        if self.batch_size % self.mini_batch_size:
            raise RlvrError(
                f"settings batch_size={self.batch_size} and mini_batch_size={self.mini_batch_size}: "
                "the batch must split into whole mini-batches"
            )
        if self.mini_batch_size % world_size:
            raise RlvrError(
                f"setting mini_batch_size={self.mini_batch_size} does not split evenly over {world_size} processes"
            )
        self._validate_variants()
        if self.algo != "ppo" and self.n < 2 and self.pg_coef != 0 and self.loss == "pg":
            raise RlvrError(f"setting n={self.n}: group advantages need at least 2 samples per prompt")
        sources = [bool(self.train_file), bool(self.pool), bool(self.problem)]
        if sum(sources) != 1:
            raise RlvrError(
                "give exactly one training source: train_file=..., pool=... index=..., or problem=... answer=..."
            )
        if self.pool and not self.index:
            raise RlvrError("setting pool needs index=ID[,ID...] naming the example(s) to train on")
        if self.problem and not self.answer.strip():
            raise RlvrError("setting problem needs a non-empty answer=...")
        from oneshot_rlvr.models.stops import check_stop

        check_stop(self.stop)  # (the tokens themselves are checked against the tokenizer when it loads)
        from oneshot_rlvr.tracking import check_installed, parse_report_to

        check_installed(parse_report_to(self.report_to))  # before the model loads, not after

    def load_options(self, device_type: str) -> LoadOptions:
        """How training loads its policy and reference model on a device of `device_type` ("cpu", "cuda"): the
        one place these settings become `LoadOptions`, with attn_implementation=auto resolved."""
        from oneshot_rlvr.models.load import LoadOptions

        attn = self.attn_implementation
        if attn == "auto":  # (see the setting: SDPA's kernel is the slower one on a CPU)
            attn = "eager" if device_type == "cpu" else "sdpa"
        return LoadOptions(dtype=self.dtype, gradient_checkpointing=self.gradient_checkpointing, lora_r=self.lora_r,
                           lora_alpha=self.lora_alpha, attn_implementation=attn)

    def _validate_variants(self) -> None:
        if not 0 <= self.random_reward_p <= 1:
            raise RlvrError(f"setting random_reward_p={self.random_reward_p} must be in [0, 1]")
        if not 0 <= self.entropy_token_quantile < 1:
            raise RlvrError(f"setting entropy_token_quantile={self.entropy_token_quantile} must be in [0, 1)")
        if self.pos_weight < 0:
            raise RlvrError(f"setting pos_weight={self.pos_weight} must be 0 or more")
        if self.overlong_penalty < 0:
            raise RlvrError(f"setting overlong_penalty={self.overlong_penalty} must be 0 or more")
        if self.overlong_penalty > 0 and not 0 < self.overlong_buffer <= self.max_new_tokens:
            raise RlvrError(f"setting overlong_buffer={self.overlong_buffer} must be in [1, max_new_tokens="
                            f"{self.max_new_tokens}] when overlong_penalty is set")


PRESETS: dict[str, dict[str, Any]] = {
    # Every value from the paper's headline run (PAPER.md); data comes from train_file / pool+index.
    "pi1-qwen2.5-math-1.5b": dict(
        model="Qwen/Qwen2.5-Math-1.5B", dtype="float32", autocast="bf16", gradient_checkpointing=True,
        algo="grpo", adv_norm="group", loss_agg="token-mean", pg_coef=1.0, entropy_coef=0.001,
        kl_coef=0.001, kl_kind="k3", clip_low=0.2, clip_high=0.2, n=8, temperature=0.6, top_p=1.0,
        max_new_tokens=3072, max_prompt_tokens=1024, lr=1e-6, weight_decay=0.01, beta1=0.9, beta2=0.999,
        grad_clip=1.0, batch_size=128, mini_batch_size=128, ppo_epochs=1, steps=2000, save_every=20,
        val_every=20, template="oneshot-train", val_template="qwen25-math-cot",
        stop="eos",  # verl's vLLM rollout: <|endoftext|> only, not the chat turn's <|im_end|>
    ),
    # One-shot entropy minimisation (arXiv 2505.20282) on pi1: no reward, the token entropy of the model's own
    # samples is the loss. From the paper's released train.py: lr 2e-5, temperature 0.5, top_p 0.95, 2048 new
    # tokens, 64 samples per optimizer step (here 8 copies of the example x 8 samples), 50 steps (README), grad
    # clip 1.0, bf16, no KL. (Its repetition_penalty 1.15 has no counterpart here.)
    "one-shot-em-qwen2.5-math-7b": dict(
        model="Qwen/Qwen2.5-Math-7B", dtype="float32", autocast="bf16", gradient_checkpointing=True,
        loss="em", entropy_coef=0.0, kl_coef=0.0, n=8, batch_size=8, mini_batch_size=8, temperature=0.5,
        top_p=0.95, max_new_tokens=2048, max_prompt_tokens=1024, lr=2e-5, weight_decay=0.0, grad_clip=1.0,
        steps=50, save_every=10, val_every=10, template="oneshot-train", val_template="qwen25-math-cot",
    ),
    # Spurious Rewards (arXiv 2506.10947), the random-reward run, applied to one example: its
    # code/scripts/rlvr_deepscaler_grpo_qwen_random.sh gives lr 5e-7 (constant, no warm-up), KL 0, temperature
    # 1.0, 64 prompts x 16 samples per rollout batch, 128 samples per update (8 prompts: 8 updates per rollout
    # batch, so the clip can act), 3072 new tokens, 1024 prompt tokens, GRPO group normalisation, no entropy
    # bonus. steps=200 is ours (the script counts data passes, not steps): set it to the run you want.
    "spurious-random-qwen2.5-math-7b": dict(
        model="Qwen/Qwen2.5-Math-7B", dtype="float32", autocast="bf16", gradient_checkpointing=True,
        reward="random", random_reward_p=0.5, algo="grpo", adv_norm="group", entropy_coef=0.0, kl_coef=0.0,
        n=16, batch_size=64, mini_batch_size=8, ppo_epochs=1, temperature=1.0, max_new_tokens=3072,
        max_prompt_tokens=1024, lr=5e-7, warmup_steps=0, steps=200, save_every=20, val_every=20,
        template="oneshot-train", val_template="qwen25-math-cot",
    ),
    # The bundled tiny world on a CPU (what `rlvr demo` trains with): minutes, not hours. bf16 autocast over
    # float32 weights (as the paper) halves the update's time on a CPU with native bf16 (auto: float32 on one
    # without, where bf16 is 10x slower); rollouts sample in float32 at the paper's temperature. 80 steps leave
    # room after the example saturates (about step 25).
    "tiny-cpu": dict(
        model="builtin:tiny", device="cpu", dtype="float32", autocast="auto", rollout_dtype="float32",
        algo="grpo", n=8, temperature=0.6, max_new_tokens=96, max_prompt_tokens=256, lr=3e-5,
        batch_size=16, mini_batch_size=16, micro_batch_size=32, rollout_batch_rows=128, steps=80,
        save_every=10, val_every=10, kl_coef=0.001, entropy_coef=0.001, template="oneshot-train",
        val_template="qwen25-math-cot",
    ),
}


def field_docs(cls: type = TrainConfig) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for prev, node in itertools.pairwise(body):
        if (isinstance(prev, ast.AnnAssign) and isinstance(prev.target, ast.Name)
                and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            docs[prev.target.id] = " ".join(inspect.cleandoc(node.value.value).split())
    return docs


def field_groups(cls: type = TrainConfig) -> dict[str, list[str]]:
    """group -> field names, from the `# --- group` comments of the class (in the order written)."""
    groups: dict[str, list[str]] = {}
    current = ""
    for line in inspect.getsource(cls).splitlines():
        heading = re.match(r"\s*# --- (\w+)", line)
        field = re.match(r"\s{4}(\w+): [^=]+=", line)
        if heading:
            current = heading.group(1)
        elif field and current:
            groups.setdefault(current, []).append(field.group(1))
    return groups


# Names other trainers use for our settings (TRL, verl, Hugging Face), for the "did you mean" hint.
_OTHER_NAMES = {
    "learning_rate": "lr", "max_grad_norm": "grad_clip", "num_generations": "n", "rollout_n": "n",
    "beta": "kl_coef", "kl_loss_coef": "kl_coef", "entropy_coeff": "entropy_coef", "max_steps": "steps",
    "total_training_steps": "steps", "max_completion_length": "max_new_tokens",
    "max_response_length": "max_new_tokens", "max_prompt_length": "max_prompt_tokens",
    "train_batch_size": "batch_size", "ppo_mini_batch_size": "mini_batch_size", "epsilon": "clip_low",
    "epsilon_high": "clip_high", "save_steps": "save_every", "eval_steps": "val_every", "warmup": "warmup_steps",
}


def suggest_setting(key: str) -> list[str]:
    """Settings the unknown `key` probably meant: another tool's name for one, else the closest spellings."""
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    normal = key.strip().lower().replace("-", "_")
    if normal in _OTHER_NAMES:
        return [_OTHER_NAMES[normal]]
    squashed = {k.replace("_", ""): k for k in known}
    if normal.replace("_", "") in squashed:
        return [squashed[normal.replace("_", "")]]
    return difflib.get_close_matches(normal, known, n=3, cutoff=0.6)


def _type_name(value: Any) -> str:
    return "bool" if isinstance(value, bool) else type(value).__name__


def describe_settings(config: TrainConfig | None = None, *, width: int = 100) -> str:
    """Every setting by group with its type, value and meaning, wrapped to `width` columns; a value that
    differs from the default (a preset's, a YAML file's) shows the default beside it."""
    config = config or TrainConfig()
    defaults, docs = TrainConfig(), field_docs()
    wrap = textwrap.TextWrapper(width=width, initial_indent="      ", subsequent_indent="      ")
    out = []
    for group, names in field_groups().items():
        out.append(f"{group}:")
        for name in names:
            value, default = getattr(config, name), getattr(defaults, name)
            changed = f"  (default {default!r})" if value != default else ""
            out.append(f"  {name}: {_type_name(default)} = {value!r}{changed}")
            out.extend(wrap.wrap(docs.get(name, "")))
        out.append("")
    return "\n".join(out)


def _coerce(key: str, raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise RlvrError(f"setting {key}={raw!r}: expected true or false")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError):
        kind = "an integer" if isinstance(default, int) else "a number"
        raise RlvrError(f"setting {key}={raw!r}: expected {kind}") from None
    if isinstance(raw, list):  # a YAML list for a comma-separated setting (report_to: [wandb, tensorboard])
        return ",".join(str(item) for item in raw)
    return "" if raw is None else str(raw)


RETIRED: dict[str, tuple[str, str]] = {
    "rollout_processes": ("1", "sampling processes are gone: continuous batching keeps one process's batch full, and "
                          "the processes never made a step faster on a measured machine"),
}
"""Settings that no longer exist: (the value that behaves as today, why it went). Older run folders' config.yaml
still name them: that value is accepted and dropped, any other is an error that says why."""


def apply_overrides(config: TrainConfig, values: dict[str, Any], *, where: str) -> TrainConfig:
    """A copy of `config` with `values` applied; unknown keys are an error naming `where`."""
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    updates = {}
    for key, raw in values.items():
        if key in RETIRED:
            same, why = RETIRED[key]
            if str(raw).strip() != same:
                raise RlvrError(f"{where}: setting {key}={raw} no longer exists ({why})")
            continue
        if key not in known:
            close = suggest_setting(key)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise RlvrError(f"{where}: unknown setting {key!r}{hint}")
        updates[key] = _coerce(key, raw, known[key].default)
    return dataclasses.replace(config, **updates)


def parse_key_values(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RlvrError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def resolve_config(preset: str | None, config_file: str | None, overrides: list[str]) -> TrainConfig:
    """Defaults <- preset <- YAML file <- KEY=VALUE overrides, in that order."""
    config = TrainConfig()
    if preset:
        if preset not in PRESETS:
            raise RlvrError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        config = apply_overrides(config, PRESETS[preset], where=f"preset {preset}")
    if config_file:
        path = Path(config_file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise RlvrError(f"{path}: cannot read config ({err})") from None
        if not isinstance(data, dict):
            raise RlvrError(f"{path}: expected a mapping of setting: value")
        config = apply_overrides(config, data, where=str(path))
    return apply_overrides(config, parse_key_values(overrides), where="command line")


PATH_SETTINGS = ("model", "train_file", "pool", "val_file")
"""Settings that may name local files or folders (the others may also be hub ids)."""

_PATHS_NOTE = "# Local files and folders are absolute paths: a resume works from any directory.\n"


def with_absolute_paths(config: TrainConfig, base: Path | None = None) -> TrainConfig:
    """A copy whose PATH_SETTINGS that name existing local files or folders are absolute (resolved against
    `base`, default the working directory); hub ids and builtin: models stay as given."""
    updates: dict[str, Any] = {}
    for key in PATH_SETTINGS:
        value = getattr(config, key)
        if not value or value.startswith("builtin:"):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else (base or Path.cwd()) / path
        if path.exists():
            updates[key] = str(path.resolve())
    return dataclasses.replace(config, **updates)


def save_config(config: TrainConfig, path: Path) -> None:
    text = yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
    path.write_text(_PATHS_NOTE + text, encoding="utf-8")


def load_config(path: Path) -> TrainConfig:
    """A run's config.yaml (what `rlvr train --resume` continues); relative paths in it (older runs) are tried
    against the run folder too."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(data, dict):
        # A shared run folder cannot grant itself the trust its own checkpoints would need.
        data.pop("trust_checkpoint", None)
    config = apply_overrides(TrainConfig(), data, where=str(path))
    return with_absolute_paths(with_absolute_paths(config), base=path.parent)
