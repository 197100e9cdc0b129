"""The RL objective as pure tensor functions: advantages, per-token losses, aggregation, log-probs."""

from __future__ import annotations

from oneshot_rlvr.algo.advantages import (
    dr_grpo_advantages,
    gae_advantages,
    grpo_advantages,
    masked_whiten,
    rloo_advantages,
)
from oneshot_rlvr.algo.logprobs import response_logprobs, token_logprobs
from oneshot_rlvr.algo.losses import (
    AGG_MODES,
    KL_KINDS,
    aggregate,
    entropy_from_logits,
    kl_penalty,
    policy_loss,
    total_loss,
    value_loss,
)

__all__ = [
    "AGG_MODES",
    "KL_KINDS",
    "aggregate",
    "dr_grpo_advantages",
    "entropy_from_logits",
    "gae_advantages",
    "grpo_advantages",
    "kl_penalty",
    "masked_whiten",
    "policy_loss",
    "response_logprobs",
    "rloo_advantages",
    "token_logprobs",
    "total_loss",
    "value_loss",
]
