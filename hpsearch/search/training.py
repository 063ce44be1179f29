"""One epoch of training, one pass of evaluation, and the pieces a trial is built from."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from hpsearch.datasets.batching import Split, ordered_batches
from hpsearch.errors import HpsearchError
from hpsearch.studies import Hyperparams

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
}
EVAL_BATCH = 1024


class TrainingDiverged(Exception):
    """The loss stopped being a finite number; the trial fails with this reason and the study goes on."""


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    balanced_accuracy: float  # mean recall over the classes present: small classes count as much as Russian
    predictions: torch.Tensor


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HpsearchError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


def make_optimizer(hp: Hyperparams, parameters) -> torch.optim.Optimizer:
    extra = {"momentum": hp.momentum} if hp.optimizer in ("sgd", "rmsprop") else {}
    return OPTIMIZERS[hp.optimizer](parameters, lr=hp.lr, weight_decay=hp.weight_decay, **extra)


def class_weights(labels: torch.Tensor, num_classes: int, balance: float) -> torch.Tensor:
    """Loss weights proportional to count ** -balance, scaled so the mean weight per sample is 1."""
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).float()
    weights = counts.pow(-balance)
    return weights * len(labels) / (weights * counts).sum()


def train_epoch(model: nn.Module, data: Split, batches: Iterable[torch.Tensor], optimizer: torch.optim.Optimizer,
                grad_clip: float, weights: torch.Tensor) -> tuple[float, float]:
    """Mean training loss (class-weighted) and accuracy over one pass of ``data`` in index ``batches``."""
    model.train()
    total_loss = torch.zeros((), device=data.labels.device)
    correct = torch.zeros((), dtype=torch.long, device=data.labels.device)
    for index in batches:
        tokens, lengths, labels = data.batch(index)
        logits = model(tokens, lengths)
        loss = nn.functional.cross_entropy(logits, labels, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        # Accumulate on the device: reading .item() per batch would synchronise a GPU every step.
        total_loss += loss.detach() * len(labels)
        correct += (logits.argmax(1) == labels).sum()
    mean_loss = total_loss.item() / len(data)
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(f"training loss became {mean_loss}")
    return mean_loss, correct.item() / len(data)


@torch.no_grad()
def evaluate(model: nn.Module, data: Split, num_classes: int) -> Evaluation:
    model.eval()
    predictions = torch.empty_like(data.labels)
    total_loss = torch.zeros((), device=data.labels.device)
    for index in ordered_batches(data.lengths, EVAL_BATCH):
        tokens, lengths, labels = data.batch(index)
        logits = model(tokens, lengths)
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum")
        predictions[index.to(predictions.device)] = logits.argmax(1)
    hits = (predictions == data.labels).float()
    per_class = torch.zeros(num_classes, device=hits.device).index_add_(0, data.labels, hits)
    support = torch.bincount(data.labels, minlength=num_classes)
    recall = per_class[support > 0] / support[support > 0]
    return Evaluation(loss=total_loss.item() / len(data), accuracy=hits.mean().item(),
                      balanced_accuracy=recall.mean().item(), predictions=predictions.cpu())
