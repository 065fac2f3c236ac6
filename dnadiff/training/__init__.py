"""Training: the Lightning module and its one training step (``module``), the training state
and resume (``state``), and ``fit``/``train`` (``fit``)."""

from dnadiff.training.fit import batch_plan, fit, train
from dnadiff.training.module import EMA, DenoiserModule, make_optimizer
from dnadiff.training.state import SaveState, fingerprint, launch_rank, load_training_state

__all__ = ["EMA", "DenoiserModule", "SaveState", "batch_plan", "fingerprint", "fit",
           "launch_rank", "load_training_state", "make_optimizer", "train"]
