"""Rollout engines: sample G responses per prompt."""

from oneshot_rlvr.rollout.base import RolloutEngine, Rollouts, SamplingParams, concat_rollouts

__all__ = ["RolloutEngine", "Rollouts", "SamplingParams", "concat_rollouts"]
