"""Training: the stage-wise Trainer with checkpoints, early stopping, TensorBoard and run records."""

from cvs_tf.training.trainer import Trainer, TrainResult

__all__ = ["TrainResult", "Trainer"]
