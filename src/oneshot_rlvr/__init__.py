"""oneshot-rlvr: reinforcement learning from verifiable rewards on one or a few training examples."""

__version__ = "0.1.0"
