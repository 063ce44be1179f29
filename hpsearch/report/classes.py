"""Per-class results of the best trial's model on the test split: what it still confuses."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pandas as pd

from hpsearch.errors import HpsearchError
from hpsearch.studies import StudySpec
from hpsearch.training.checkpoint import ModelSource
from hpsearch.training.classification import evaluate


@dataclass(frozen=True)
class ClassResults:
    table: pd.DataFrame  # per class: support, precision, recall (= per-class accuracy), F1
    confusion: pd.DataFrame  # rows: true class, columns: predicted class, counts

    def most_confused(self, n: int = 5) -> list[tuple[str, str, int]]:
        off_diagonal = self.confusion.stack()
        off_diagonal = off_diagonal[[a != b for a, b in off_diagonal.index]]
        return [(a, b, int(count)) for (a, b), count in off_diagonal.nlargest(n).items() if count > 0]


def class_results(trial: optuna.trial.FrozenTrial, spec: StudySpec, data_dir: str | None,
                  checkpoints: ModelSource) -> ClassResults | str:
    """The results of a classification task's trial, or a one-line reason they cannot be computed here."""
    try:
        trained = checkpoints.load(trial)
    except HpsearchError as exc:
        return str(exc)
    data = trained.task.load(data_dir, spec.data)
    if tuple(trained.meta["classes"]) != tuple(data.classes):
        return f"trial {trial.number} was trained on other classes than the data found now; check --data-dir"
    names = list(data.classes)
    test = data.split("test")
    predicted = evaluate(trained.model, test, len(names)).predictions
    true = pd.Categorical.from_codes(test.labels.cpu().numpy(), categories=names)
    guess = pd.Categorical.from_codes(predicted.numpy(), categories=names)
    confusion = pd.crosstab(pd.Series(true, name="true"), pd.Series(guess, name="predicted"), dropna=False)
    hits = pd.Series([confusion.loc[c, c] for c in names], index=names)
    support, predicted_count = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = (hits / predicted_count.replace(0, float("nan"))).fillna(0.0)
    recall = (hits / support.replace(0, float("nan"))).fillna(0.0)
    f1 = (2 * precision * recall / (precision + recall).replace(0, float("nan"))).fillna(0.0)
    table = pd.DataFrame({"test samples": support, "precision": precision, "recall (accuracy)": recall, "F1": f1})
    return ClassResults(table.sort_values("test samples", ascending=False), confusion)
