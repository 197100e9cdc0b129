"""The RL objective as pure tensor functions: advantages, per-token losses, aggregation, log-probs."""

from __future__ import annotations

from oneshot_rlvr.algo.advantages import (
    OUTCOME_ESTIMATORS,
    dr_grpo_advantages,
    gae_advantages,
    grpo_advantages,
    masked_whiten,
    outcome_advantages,
    rloo_advantages,
)
from oneshot_rlvr.algo.logprobs import response_logprobs, token_logprobs, token_statistics
from oneshot_rlvr.algo.losses import (
    AGG_MODES,
    KL_KINDS,
    RATIO_LEVELS,
    aggregate,
    entropy_from_logits,
    kl_penalty,
    policy_loss,
    self_certainty_from_logits,
    total_loss,
    value_loss,
)
from oneshot_rlvr.algo.variants import (
    em_loss,
    frac_zero_std,
    high_entropy_mask,
    overlong_penalty,
    sequence_log_ratio,
    truncation_mask,
    weight_positive,
)

__all__ = [
    "AGG_MODES",
    "KL_KINDS",
    "OUTCOME_ESTIMATORS",
    "RATIO_LEVELS",
    "aggregate",
    "dr_grpo_advantages",
    "em_loss",
    "entropy_from_logits",
    "frac_zero_std",
    "gae_advantages",
    "grpo_advantages",
    "high_entropy_mask",
    "kl_penalty",
    "masked_whiten",
    "outcome_advantages",
    "overlong_penalty",
    "policy_loss",
    "response_logprobs",
    "rloo_advantages",
    "self_certainty_from_logits",
    "sequence_log_ratio",
    "token_logprobs",
    "token_statistics",
    "total_loss",
    "truncation_mask",
    "value_loss",
    "weight_positive",
]
