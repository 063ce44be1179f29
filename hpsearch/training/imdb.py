"""IMDB sentiment (seed 001): a review -> negative or positive, from its words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from hpsearch.datasets import imdb
from hpsearch.studies.spec import Limit
from hpsearch.training.classification import ClassifierHyperparams, SequenceClassification
from hpsearch.training.task import QUESTIONS, Question


@dataclass(frozen=True)
class ReviewHyperparams(ClassifierHyperparams):
    # Reviews run from ten to over two thousand tokens; reading at most max_len of them bounds the cost of a
    # batch, and "end" keeps the last ones, where a reviewer often gives the verdict.
    max_len: int = 400
    keep: Literal["start", "end"] = "start"
    # ce: one logit per class and softmax cross-entropy; bce: one logit, sigmoid and binary cross-entropy
    # (seed 001 compared the two).
    loss: Literal["ce", "bce"] = "ce"

    limits: ClassVar = {**ClassifierHyperparams.limits, "max_len": Limit(1)}


class Imdb(SequenceClassification):
    name = "imdb"
    data_options = imdb.Options
    hyperparams = ReviewHyperparams
    subject, label = "review", "sentiment"
    token, baseline_ngrams = "word", (1, 2)
    # Not measured on a GPU yet. Reviews run to a thousand lengths, most with too few reviews for a batch of
    # their own, and a long batch keeps the GPU computing rather than waiting on launches.
    graphed = False
    questions = (*QUESTIONS,
                 Question("loss", "Loss", ("loss",), "Cross-entropy over two logits, or binary cross-entropy over one?"),
                 Question("pooling", "Pooling", ("pooling",),
                          "What should the head read: the final state, or the mean or max over every position?"),
                 Question("max_len", "Review length read", ("max_len",),
                          "How many tokens of a review must the model read, for accuracy and for time?"),
                 Question("keep", "Which end", ("keep",), "Should a long review be cut after its start or before its end?"),
                 Question("embedding_dim", "Embedding size", ("embedding_dim",), "How large a word embedding?"))
    # Peak RSS of the imdb space's largest model (hand-written bidirectional 2-layer LSTM of 128, embedding 128,
    # max pooling, batch 128 of 512-token reviews: 2.62 GB) less that of a worker that has loaded torch, MLflow
    # and the full-size data (0.50 GB); `python benchmarks/imdb_data.py --largest`, 2026-11-26.
    training_memory = int(2.1e9)

    unused: ClassVar = {"class_balance": "the reviews are balanced; a class weight changes nothing"}

    def load(self, root: str | None, options: imdb.Options) -> imdb.ImdbData:
        return imdb.load(root, options)

    def describe(self, data: imdb.ImdbData) -> dict[str, Any]:
        # The vocabulary travels with the model: a prediction needs no data folder.
        return {**super().describe(data), "vocab": list(data.vocab)}

    def model_options(self, hp: ReviewHyperparams) -> dict[str, Any]:
        return {**super().model_options(hp), "max_len": hp.max_len, "keep": hp.keep, "single_logit": hp.loss == "bce"}

    def encode(self, texts: Sequence[str], meta: Mapping[str, Any]) -> list[list[int]]:
        index = {token: i for i, token in enumerate(meta["vocab"])}
        # A review none of whose words the model knows would be classified from unknown tokens alone.
        return [ids if any(i != imdb.UNKNOWN for i in ids) else [] for ids in imdb.encode(texts, index)]

    def unreadable(self, text: str) -> str:
        return "none of its words is in the model's vocabulary (English words, lowercased, from the training reviews)"

    def show(self, row: Mapping[str, Any]) -> str:
        """The sentiment, its probability and the review's start: "negative 0.934: This movie was a waste..."."""
        if not row["predictions"]:
            return f"cannot classify: {row['error']}"
        best, text = row["predictions"][0], " ".join(row[self.subject].split())
        return f"{best[self.label]} {best['probability']:.3f}: {text if len(text) <= 60 else text[:57] + '...'}"
