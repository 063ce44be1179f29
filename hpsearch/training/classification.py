"""Sequence classification, shared by the tasks that label a token sequence (surnames, IMDB): the classifier's
parameters, class weights, one epoch over length buckets, evaluation, and top-k prediction from raw text."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from hpsearch.datasets.batching import (ordered_batches, shuffled_batches, tensorise, to_device, uniform_batches,
                                       unpadded)
from hpsearch.models import RecurrentClassifier
from hpsearch.studies import Hyperparams
from hpsearch.studies.spec import Limit
from hpsearch.training.graphs import StepGraphs, graphs_of
from hpsearch.training.task import Baseline, Epoch, Metric, Task

EVAL_BATCH = 1024
EVAL_TOKENS = 1 << 16  # and at most this many padded tokens: long reviews would otherwise need gigabytes
SCORES = ("accuracy", "balanced_accuracy", "blended_accuracy")  # what scores() measures from predictions


@dataclass(frozen=True)
class ClassifierHyperparams(Hyperparams):
    pooling: Literal["last", "mean", "max"] = "last"  # what the head reads: the final state, or all outputs pooled
    head_size: int = 0  # a hidden ReLU layer of this width before the output; 0: a linear head
    token_dropout: float = 0.0  # the chance that training blanks a token (a character, a word) of a sequence

    limits: ClassVar = {**Hyperparams.limits, "head_size": Limit(0), "token_dropout": Limit(0, 1, high_open=True)}


class LabelledSplit(Protocol):
    """A split of labelled token sequences: surnames' padded ``Split``, IMDB's ragged ``Reviews``."""

    lengths: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class LabelledData(Protocol):
    classes: tuple[str, ...]
    vocab_size: int
    fingerprint: str

    def split(self, name: str) -> LabelledSplit: ...


@dataclass(frozen=True)
class Evaluation:
    loss: float
    scores: dict[str, float]  # accuracy, balanced_accuracy and blended_accuracy: see scores()
    predictions: torch.Tensor


def class_weights(labels: torch.Tensor, num_classes: int, balance: float) -> torch.Tensor:
    """Loss weights proportional to count ** -balance, scaled so the mean weight per sample is 1."""
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).float()
    weights = counts.pow(-balance)
    return weights * len(labels) / (weights * counts).sum()


def train_epoch(model: nn.Module, data: LabelledSplit, batches: Iterable[torch.Tensor], optimizer: torch.optim.Optimizer,
                grad_clip: float, weights: torch.Tensor, graphs: StepGraphs | None = None) -> Epoch:
    """Mean training loss (class-weighted) and accuracy over one pass of ``data`` in index ``batches``; with
    ``graphs``, a batch whose sequences all have one length replays its shape's captured step."""
    model.train()

    def step(tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        logits = model(tokens, lengths)
        loss = nn.functional.cross_entropy(logits, labels, weight=weights)
        optimizer.zero_grad(set_to_none=graphs is None)  # a captured step writes the gradients it was captured with
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        # Summed on the device: reading .item() per batch would synchronise a GPU every step.
        return torch.stack([loss.detach() * len(labels), (logits.argmax(1) == labels).sum().float()])

    totals = graphs.start(2, data.labels.device) if graphs is not None else torch.zeros(2, device=data.labels.device)
    steps = 0
    for index in batches:
        tokens, lengths, labels = data.batch(index)
        if graphs is None:
            totals += step(tokens, lengths, labels, weights)
        elif unpadded(tokens, lengths):
            graphs.run(tokens.shape, step, tokens, lengths, labels, weights)
        else:
            graphs.eager(step, tokens, lengths, labels, weights)
        steps += 1
    loss, correct = totals.tolist()
    return Epoch({"loss": loss / len(data), "accuracy": correct / len(data)}, len(data), steps)


@torch.no_grad()
def evaluate(model: nn.Module, data: LabelledSplit, num_classes: int) -> Evaluation:
    model.eval()
    predictions = torch.empty_like(data.labels)
    total_loss = torch.zeros((), device=data.labels.device)
    for index in ordered_batches(data.lengths, EVAL_BATCH, EVAL_TOKENS):
        tokens, lengths, labels = data.batch(index)
        logits = model(tokens, lengths)
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum")
        predictions[to_device(index, predictions.device)] = logits.argmax(1)
    return Evaluation(loss=total_loss.item() / len(data), scores=scores(predictions, data.labels, num_classes),
                      predictions=predictions.cpu())


def device_of(model: nn.Module) -> torch.device:
    return next(iter(model.state_dict().values())).device  # a fitted baseline has buffers, no parameters


@torch.no_grad()
def probabilities(model: nn.Module, data: LabelledSplit) -> torch.Tensor:
    """(rows, classes) class probabilities of a split's sequences, on the CPU."""
    model.eval()
    device = device_of(model)
    found = torch.empty(len(data), len(model.classes))
    for index in ordered_batches(data.lengths, EVAL_BATCH, EVAL_TOKENS):
        tokens, lengths, _ = data.batch(index)
        found[index] = model(tokens.to(device), lengths).softmax(-1).cpu()
    return found


def scores(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy; balanced accuracy, the mean recall over the classes present, so small classes count as much as
    large ones; and their mean, blended accuracy, which no model reaches by serving either side alone."""
    hits = (predictions == labels).float()
    per_class = torch.zeros(num_classes, device=hits.device).index_add_(0, labels, hits)
    support = torch.bincount(labels, minlength=num_classes)
    accuracy, balanced = hits.mean().item(), (per_class[support > 0] / support[support > 0]).mean().item()
    return dict(zip(SCORES, (accuracy, balanced, (accuracy + balanced) / 2), strict=True))


class SequenceClassification(Task):
    """A token sequence in, one of ``classes`` out. A subclass loads the data and encodes raw text."""

    metrics = tuple(Metric(name, "maximize", perfect=1.0) for name in SCORES)
    objective = "val_accuracy"
    has_classes = True
    subject: ClassVar[str] = "input"  # what an input is called in a prediction row ("name")
    label: ClassVar[str] = "class"  # and what a class is called ("language")
    token: ClassVar[str] = "token"  # what a token is ("character"), and the n-grams of them the baseline reads
    baseline_ngrams: ClassVar[tuple[int, int]] = (1, 2)
    graphed: ClassVar[bool] = True  # on a GPU, batches of one length replay a captured step (training.graphs)

    hyperparams = ClassifierHyperparams

    def encode(self, texts: Sequence[str], meta: Mapping[str, Any]) -> list[list[int]]:
        """Token ids of each raw text, for the model ``meta`` describes; an empty list for a text the vocabulary
        has nothing of."""
        raise NotImplementedError

    def unreadable(self, text: str) -> str:
        """Why a text that encodes to nothing cannot be classified."""
        return "nothing in it is in the vocabulary"

    def baseline(self, data: LabelledData) -> Baseline:
        from hpsearch.training.baseline import ngram_logistic  # scikit-learn: only where a baseline is fitted

        return ngram_logistic(data, self.baseline_ngrams, self.token)

    def baseline_model(self, data: LabelledData) -> nn.Module:
        """The baseline ``baseline`` scores, fitted again (it is deterministic)."""
        from hpsearch.training.baseline import fit_ngram_logistic

        return fit_ngram_logistic(data, self.baseline_ngrams)

    def fitted_members(self, data: LabelledData) -> dict[str, nn.Module]:
        """What the served ensemble is offered beside the trials, by name: the baseline (fitted again, as it is
        deterministic) and naive Bayes over its n-grams."""
        from hpsearch.training.baseline import fit_ngram_members

        return fit_ngram_members(data, self.baseline_ngrams)

    def describe(self, data: LabelledData) -> dict[str, Any]:
        return {"classes": list(data.classes), "vocab_size": data.vocab_size}

    def model_options(self, hp: ClassifierHyperparams) -> dict[str, Any]:
        """RecurrentClassifier's keyword arguments for ``hp``."""
        return {"cell": hp.cell, "embedding_dim": hp.embedding_dim, "hidden_size": hp.hidden_size,
                "num_layers": hp.num_layers, "bidirectional": hp.bidirectional, "dropout": hp.dropout,
                "nonlinearity": hp.nonlinearity, "implementation": hp.implementation, "pooling": hp.pooling,
                "head_size": hp.head_size, "token_dropout": hp.token_dropout}

    def restore(self, hp: ClassifierHyperparams, meta: Mapping[str, Any]) -> nn.Module:
        model = RecurrentClassifier(meta["vocab_size"], len(meta["classes"]), **self.model_options(hp))
        model.classes = tuple(meta["classes"])  # travels with a pickled model, so it can name its predictions
        return model

    def train_epoch(self, model: nn.Module, data: LabelledData, optimizer: torch.optim.Optimizer, hp: Hyperparams,
                    generator: torch.Generator) -> Epoch:
        train = data.split("train")
        weights = class_weights(train.labels, len(data.classes), hp.class_balance)
        graphs = graphs_of(optimizer) if self.graphed else None
        # A captured step replays only on its own batch shape, so on a GPU most batches hold one length each.
        batches = (shuffled_batches if graphs is None else uniform_batches)(train.lengths, hp.batch_size, generator)
        return train_epoch(model, train, batches, optimizer, hp.grad_clip, weights, graphs)

    def evaluate(self, model: nn.Module, data: LabelledData, split: str) -> dict[str, float]:
        result = evaluate(model, data.split(split), len(data.classes))
        return {"loss": result.loss, **result.scores}

    def predict(self, model: nn.Module, meta: Mapping[str, Any], queries: Sequence[str],
                top_k: int) -> list[dict[str, Any]]:
        rows = []
        for text, top in zip(queries, self.classify(model, queries, top_k, meta), strict=True):
            rows.append({self.subject: text, "predictions": [{self.label: c, "probability": p} for c, p in top],
                         **({} if top else {"error": self.unreadable(text)})})
        return rows

    @torch.no_grad()
    def classify(self, model: nn.Module, texts: Sequence[str], top_k: int = 3,
                 meta: Mapping[str, Any] | None = None) -> list[list[tuple[str, float]]]:
        """The ``top_k`` (class, probability) pairs for each text, most likely first; [] for an unreadable one.

        ``model`` carries its class names in ``model.classes``: a checkpoint's, or one MLflow loaded; ``meta``
        is its checkpoint's, for a task whose vocabulary is learnt from the data.
        """
        encoded = self.encode(texts, meta or {})
        keep = [i for i, seq in enumerate(encoded) if seq]
        results: list[list[tuple[str, float]]] = [[] for _ in texts]
        if keep:
            found = probabilities(model, tensorise([encoded[i] for i in keep], [0] * len(keep)))
            best = found.topk(min(top_k, found.shape[1]), dim=1)
            for row, i in enumerate(keep):
                ranked = zip(best.values[row].tolist(), best.indices[row].tolist(), strict=True)
                results[i] = [(model.classes[c], p) for p, c in ranked]
        return results

    def answer(self, row: Mapping[str, Any]) -> str | None:
        return row["predictions"][0][self.label] if row["predictions"] else None

    def show(self, row: Mapping[str, Any]) -> str:
        ranked = ", ".join(f"{p[self.label]} {p['probability']:.3f}" for p in row["predictions"])
        return f"{row[self.subject]}: {ranked or 'cannot classify: ' + row['error']}"
