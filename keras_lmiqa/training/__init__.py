"""Training: `train(config)` runs the loop (`loop`: data, checkpoints, validation, the
run folder); `step` holds one training step of the two branches for every
tf.distribute strategy (`LMIQATrainer`)."""

from keras_lmiqa.training.loop import train
from keras_lmiqa.training.step import LOSS_NAMES, LMIQATrainer

__all__ = ["LOSS_NAMES", "LMIQATrainer", "train"]
