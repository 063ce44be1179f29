"""The model a classification study serves: its best trials' class probabilities averaged and mixed with the
fitted baseline's (models.Ensemble), answering with the class that maximizes the expected served metric.

Two choices, both on the validation split: how many of the best trials, and how much baseline. They are made
by the mixture's log-loss there, a proper scoring rule: it rewards the best probabilities and is smooth, while
choosing by validation balanced accuracy fits noise (the smallest surname languages have 7-10 names there). The
answer then needs no choice at all: for a mixture whose probabilities p are right, predicting class c for an
input earns, in expectation, p(c) for accuracy, p(c) / (C x share of c) for balanced accuracy (every class's
recall counts the same), and their mean for blended accuracy. So each class gets the gain the metric gives it
(``gains``), and the answer is the class of highest p x gain.

Measured on the surname data (2026-11-26, the test splits of four searches' stored trials, blended accuracy):
choosing trials, baseline weight and a prior correction p / prior^tau (tau 0-1) by validation blended accuracy
gave 0.732, 0.705, 0.726, 0.719; this rule 0.741, 0.723, 0.722, 0.725; this rule with a temperature also fitted
by log-loss 0.730, 0.723, 0.722, 0.718.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hpsearch.models.ensemble import Ensemble
from hpsearch.models.ngram import NgramLogistic
from hpsearch.training.classification import LabelledData, device_of, probabilities, scores

TOP = (1, 2, 3, 5)  # how many of the best trials may be averaged
WEIGHTS = tuple(i / 10 for i in range(11))  # the baseline's share of the probability


@dataclass(frozen=True)
class Choice:
    top: int  # the best trials averaged
    baseline_weight: float  # the baseline's share of the probability; the trials share the rest equally

    def describe(self, trials: Sequence[int], metric: str) -> str:
        answering = f", answering for {metric.replace('_', ' ')}"
        if self.baseline_weight == 1:
            return "the baseline alone" + answering
        chosen = trials[:self.top]
        numbers = " ".join(f"#{n}" for n in chosen)
        text = f"trial #{chosen[0]}" if self.top == 1 else f"the top {self.top} trials ({numbers}) averaged"
        if self.baseline_weight:
            text += f", mixed {1 - self.baseline_weight:g} / {self.baseline_weight:g} with the baseline"
        return text + answering


def gains(metric: str, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """What answering each class is worth under ``metric`` (accuracy, balanced_accuracy, blended_accuracy), per
    unit of its probability; the class shares are those of ``labels`` (the training split)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float()
    present = counts > 0
    share = counts / counts.sum()
    # A class the training split lacks is never right in expectation: it keeps the plain gain.
    balanced = torch.where(present, 1 / (present.sum() * share.clamp(min=1e-12)), torch.ones(num_classes))
    return {"accuracy": torch.ones(num_classes), "balanced_accuracy": balanced,
            "blended_accuracy": (1 + balanced) / 2}[metric]


def choose(trials: Sequence[torch.Tensor], baseline: torch.Tensor | None, labels: torch.Tensor) -> Choice:
    """The mixture of validation probabilities (``trials`` best first, and the baseline's) with the lowest
    log-loss; a more complex one must be strictly lower: the search goes from the best trial alone outwards."""
    best, lowest = Choice(1, 0.0), float("inf")
    for top in (k for k in TOP if k <= len(trials)):
        averaged = torch.stack(list(trials[:top])).mean(0)
        for weight in WEIGHTS if baseline is not None else (0.0,):
            mixed = (1 - weight) * averaged + weight * baseline if weight else averaged
            found = nn.functional.nll_loss(mixed.clamp_min(1e-12).log(), labels.cpu()).item()
            if found < lowest:
                best, lowest = Choice(top, weight), found
    return best


@dataclass(frozen=True)
class Assembled:
    model: Ensemble
    choice: Choice
    members: tuple[int | None, ...]  # the trial of each member; None for the baseline
    results: dict[str, float]  # val_* and test_* scores of the ensemble


def assemble(data: LabelledData, ranked: Sequence[tuple[int, nn.Module]], baseline: NgramLogistic | None,
             metric: str) -> Assembled:
    """The served model from the study's completed trials' models, best first, and its baseline, answering for
    ``metric``."""
    val = data.split("val")
    found = [probabilities(model, val) for _, model in ranked[:max(TOP)]]
    choice = choose(found, probabilities(baseline, val) if baseline is not None else None, val.labels)
    share = (1 - choice.baseline_weight) / choice.top
    members: list[tuple[int | None, nn.Module, float]] = [(n, m, share) for n, m in ranked[:choice.top] if share]
    if choice.baseline_weight:
        members.append((None, baseline, choice.baseline_weight))
    worth = gains(metric, data.split("train").labels, len(data.classes))
    model = Ensemble([m for _, m, _ in members], [w for _, _, w in members], worth)
    model = model.to(device_of(members[0][1])).eval()
    model.classes = tuple(data.classes)
    results = {}
    for name in ("val", "test"):
        split = data.split(name)
        measured = scores(probabilities(model, split).argmax(1), split.labels.cpu(), len(data.classes))
        results |= {f"{name}_{key}": value for key, value in measured.items()}
    return Assembled(model, choice, tuple(n for n, _, _ in members), results)
