"""Datasets, one module per task: locate, download or generate, clean, split and tensorise. Plain PyTorch."""

from hpsearch.datasets.options import DataOptions, Fractions

__all__ = ["DataOptions", "Fractions"]
