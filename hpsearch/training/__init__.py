"""Plain PyTorch, below the search: the task contract and its tasks, the training loop, checkpoints. No optuna,
no mlflow: `report`, `predict` and `train` use it as it is."""

from hpsearch.training.registry import TASKS

__all__ = ["TASKS"]
