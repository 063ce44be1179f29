"""Datasets, one module per task: locate or download, clean, split and tensorise. Plain PyTorch."""

from hpsearch.datasets import surnames

# Task name in a study spec -> loader taking (root, **spec data options).
TASKS = {"surnames": surnames.load}

__all__ = ["TASKS"]
