"""Recurrent models: a shared layer stack and one head per kind of task. Plain PyTorch: usable without optuna
or mlflow."""

from hpsearch.models.adder import DigitAdder
from hpsearch.models.classifier import RecurrentClassifier
from hpsearch.models.encoder import CELLS, recurrent
from hpsearch.models.namer import NameGenerator

__all__ = ["CELLS", "DigitAdder", "NameGenerator", "RecurrentClassifier", "recurrent"]
