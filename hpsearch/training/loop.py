"""Fitting one configuration of a task, epoch by epoch, keeping its best epoch. No optuna, no mlflow: the
objective, retraining and benchmarks drive the same loop."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hpsearch.errors import HpsearchError
from hpsearch.studies import Hyperparams
from hpsearch.training.task import Task, TaskData

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
}


class TrainingDiverged(Exception):
    """The loss stopped being a finite number; the trial fails with this reason and the study goes on."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HpsearchError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


# One kernel per step for every parameter, rather than several per group of tensors (GPU) or a loop over the
# tensors (CPU): the surnames baseline's training epoch takes 0.88x the time on an H100 (Adam) and 0.91-0.96x
# on a CPU, with the same losses (benchmarks/optimizers.py). The other optimizers have no fused form, and
# torch 2.11 refuses a fused Adagrad on CUDA (2.13 may not; untried), so Adagrad is fused on the CPU only.
FUSED = {"cpu": ("adam", "adamw", "sgd", "adagrad"), "cuda": ("adam", "adamw", "sgd")}

# On a GPU these optimizers are built so that training.graphs can capture their step: the learning rate a
# tensor on the device (a schedule fills it in place) and, where the constructor asks for it, `capturable`.
# Adagrad's step cannot be captured (it reads its step count on the host), so it runs eagerly. Some steps
# still run outside a graph (a batch of mixed lengths, a task that captures none), which torch would warn
# about once per optimizer, that is once per trial.
CAPTURABLE = ("adam", "adamw", "rmsprop", "adadelta", "adamax")
GRAPHED = (*CAPTURABLE, "sgd")
warnings.filterwarnings("ignore", message="This instance was constructed with capturable=True", category=UserWarning)


def make_optimizer(hp: Hyperparams, parameters) -> torch.optim.Optimizer:
    parameters = list(parameters)
    device = parameters[0].device
    graphed = device.type == "cuda" and hp.optimizer in GRAPHED
    lr = torch.tensor(hp.lr, device=device) if graphed else hp.lr
    extra = {"momentum": hp.momentum} if hp.optimizer in ("sgd", "rmsprop") else {}
    extra |= {"fused": True} if hp.optimizer in FUSED.get(device.type, ()) else {}
    extra |= {"capturable": True} if graphed and hp.optimizer in CAPTURABLE else {}
    return OPTIMIZERS[hp.optimizer](parameters, lr=lr, weight_decay=hp.weight_decay, **extra)


@dataclass(frozen=True)
class Fitted:
    """A finished fit: its best epoch's model (weights restored) and what it measured."""

    model: nn.Module
    results: dict[str, Any]  # the best epoch's val_* metrics, test_* metrics and the task's results
    epochs: int
    best_epoch: int
    epoch_seconds: float
    samples_per_second: float
    step_seconds: float
    n_params: int


class Fit:
    """One configuration trained epoch by epoch; ``select`` (a validation metric) picks the best epoch.

    Iterating yields each epoch's metrics; ``best(name)`` is the best value of a metric so far, ``finish()``
    restores the best epoch's weights and measures it on the test split.
    """

    def __init__(self, task: Task, hp: Hyperparams, data: TaskData, *, max_epochs: int, seed: int,
                 device: torch.device, select: str) -> None:
        self.task, self.hp, self.data, self.max_epochs = task, hp, data, max_epochs
        self.select, self.maximize = select, task.selectable()[select] == "maximize"
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.model = task.build(hp, data).to(device)
        self.optimizer = make_optimizer(hp, self.model.parameters())
        self.schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, max_epochs)
                         if hp.lr_schedule == "cosine" else None)
        self.history: list[dict[str, float]] = []
        self.best_epoch, self.best_state = 0, None
        self._train_seconds = self._total_seconds = 0.0
        self._samples = self._steps = 0

    def __iter__(self) -> Iterator[dict[str, float]]:
        perfect = self.task.metric(self.select).perfect
        for epoch in range(1, self.max_epochs + 1):
            start = time.perf_counter()
            lr = float(self.optimizer.param_groups[0]["lr"])
            trained = self.task.train_epoch(self.model, self.data, self.optimizer, self.hp, self.generator)
            if not math.isfinite(trained.metrics["loss"]):
                raise TrainingDiverged(f"training loss became {trained.metrics['loss']}")
            if self.schedule:
                self.schedule.step()
            train_end = time.perf_counter()
            val = self.task.evaluate(self.model, self.data, "val")
            seconds = time.perf_counter() - start
            self._train_seconds += train_end - start
            self._total_seconds += seconds
            self._samples += trained.samples
            self._steps += trained.steps
            metrics = {**{f"train_{k}": v for k, v in trained.metrics.items()},
                       **{f"val_{k}": v for k, v in val.items()}, "epoch_seconds": seconds,
                       "samples_per_second": trained.samples / (train_end - start), "lr": lr}
            if self.best_epoch == 0 or self._better(metrics[self.select], self.history[self.best_epoch - 1]):
                self.best_epoch = epoch
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.history.append(metrics)
            yield metrics
            if perfect is not None and self.best(self.select) == perfect:
                return  # nothing can beat it: more epochs would only cost time

    def _better(self, value: float, than: dict[str, float]) -> bool:
        return value > than[self.select] if self.maximize else value < than[self.select]

    def best(self, name: str) -> float:
        """The best value of a validation metric over the epochs so far, in its own direction."""
        values = [metrics[name] for metrics in self.history]
        return max(values) if self.task.selectable()[name] == "maximize" else min(values)

    @property
    def epochs(self) -> int:
        return len(self.history)

    def cost(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch,
                "epoch_seconds": self._total_seconds / self.epochs,
                "samples_per_second": self._samples / self._train_seconds,
                "step_seconds": self._train_seconds / self._steps}

    def finish(self) -> Fitted:
        self.model.load_state_dict(self.best_state)
        best_val = self.history[self.best_epoch - 1]
        test = self.task.evaluate(self.model, self.data, "test")
        results = {**{k: v for k, v in best_val.items() if k.startswith("val_")},
                   **{f"test_{k}": v for k, v in test.items()},
                   **self.task.final(self.model, self.data, self.history)}
        return Fitted(self.model, results, n_params=sum(p.numel() for p in self.model.parameters()), **self.cost())
