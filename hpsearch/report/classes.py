"""Per-class results of a model's answers on the test split: what it still confuses, and where its balanced
accuracy comes from (the mean of the recall column)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import torch

    from hpsearch.training.classification import LabelledData

RECALL = "recall (accuracy)"


@dataclass(frozen=True)
class ClassResults:
    table: pd.DataFrame  # per class: support, precision, recall (= per-class accuracy), F1
    confusion: pd.DataFrame  # rows: true class, columns: predicted class, counts

    def most_confused(self, n: int = 5) -> list[tuple[str, str, int]]:
        off_diagonal = self.confusion.stack()
        off_diagonal = off_diagonal[[a != b for a, b in off_diagonal.index]]
        return [(a, b, int(count)) for (a, b), count in off_diagonal.nlargest(n).items() if count > 0]


def class_results(predicted: torch.Tensor, data: LabelledData) -> ClassResults:
    """The per-class results of ``predicted``, a model's class for each row of ``data``'s test split."""
    names = list(data.classes)
    test = data.split("test")
    true = pd.Categorical.from_codes(test.labels.cpu().numpy(), categories=names)
    guess = pd.Categorical.from_codes(predicted.numpy(), categories=names)
    confusion = pd.crosstab(pd.Series(true, name="true"), pd.Series(guess, name="predicted"), dropna=False)
    hits = pd.Series([confusion.loc[c, c] for c in names], index=names)
    support, predicted_count = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = (hits / predicted_count.replace(0, float("nan"))).fillna(0.0)
    recall = (hits / support.replace(0, float("nan"))).fillna(0.0)
    f1 = (2 * precision * recall / (precision + recall).replace(0, float("nan"))).fillna(0.0)
    table = pd.DataFrame({"test samples": support, "precision": precision, RECALL: recall, "F1": f1})
    return ClassResults(table.sort_values("test samples", ascending=False), confusion)
