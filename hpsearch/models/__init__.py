"""Recurrent models. Plain PyTorch: usable without optuna or mlflow."""

from hpsearch.models.classifier import CELLS, RecurrentClassifier

__all__ = ["CELLS", "RecurrentClassifier"]
