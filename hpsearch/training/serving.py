"""A trained model as MLflow serves it: raw inputs in, answers out. MLflow's pyfunc flavour loads it through
``_load_pyfunc`` (its ``loader_module`` contract), so this module needs no mlflow itself.

Each row of the input DataFrame is one query: its values joined by spaces, as the task reads command-line
arguments (a surname; for addition, the two numbers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hpsearch.training import checkpoint


class Served:
    def __init__(self, trained: checkpoint.Trained) -> None:
        self.trained = trained

    def predict(self, model_input: pd.DataFrame | list, params: dict[str, Any] | None = None) -> list:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame({"input": model_input})
        queries = [" ".join(str(value) for value in row) for row in frame.itertuples(index=False)]
        task, model, meta = self.trained.task, self.trained.model, self.trained.meta
        return [task.answer(row) for row in task.predict(model, meta, queries, top_k=1)]


def _load_pyfunc(path: str) -> Served:
    return Served(checkpoint.load(Path(path).read_bytes()))
