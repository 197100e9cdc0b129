"""RLVR training: `train(config, out_dir)` runs the loop and writes the run folder."""

from oneshot_rlvr.train.loop import train
from oneshot_rlvr.train.update import TrainingDiverged

__all__ = ["TrainingDiverged", "train"]
