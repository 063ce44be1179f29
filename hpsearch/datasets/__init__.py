"""Datasets, one module per task: locate or download, clean, split and tensorise. Plain PyTorch."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

# Task name in a study spec -> the module whose ``load(root, **spec data options)`` reads its data. Named,
# not imported: validating a spec or listing studies must not pay for importing torch.
_MODULES = {"surnames": "hpsearch.datasets.surnames"}
TASKS = tuple(_MODULES)


def load_data(task: str, root: str | Path | None, **options: Any) -> Any:
    return importlib.import_module(_MODULES[task]).load(root, **options)


__all__ = ["TASKS", "load_data"]
