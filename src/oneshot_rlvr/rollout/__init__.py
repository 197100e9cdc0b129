"""Rollout engines: sample G responses per prompt."""

from oneshot_rlvr.rollout.base import RolloutEngine, Rollouts, SamplingParams

__all__ = ["RolloutEngine", "Rollouts", "SamplingParams"]
