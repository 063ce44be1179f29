"""The task contract: what a task plug-in declares and does, so that search, report, MLflow and the CLI need
not know which task they run.

A task is a subclass of ``Task`` in ``training/<task>.py``, named by one line of ``training/registry.py``.
Its data loader lives in ``datasets/<task>.py`` and its model head in ``models/``. Metric names follow one
rule everywhere: a task measures ``loss`` and its ``metrics`` on a split, and a split's results are named
``<split>_<metric>`` (``val_accuracy``, ``test_exact_match``); ``results`` are further numbers a completed
trial records once, by name.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from hpsearch.datasets import DataOptions
from hpsearch.errors import HpsearchError
from hpsearch.studies.record import Baseline
from hpsearch.studies.spec import Hyperparams, Param

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: Direction
    perfect: float | None = None  # no model can do better: a trial whose validation value reaches it stops


LOSS = Metric("loss", "minimize")


class TaskData(Protocol):
    """What a task's loader returns: whatever its methods need, plus these two."""

    fingerprint: str  # tells which data a stored result came from; a study refuses to resume on other data

    def to(self, device: torch.device) -> TaskData: ...


@dataclass(frozen=True)
class Question:
    """A comparison the report answers from a study's trials: the levels are the (crossed) values of ``columns``."""

    key: str
    title: str
    columns: tuple[str, ...]
    text: str


# The questions every student report asked; a task may add its own.
QUESTIONS = (
    Question("cell", "Cell type", ("cell", "bidirectional", "implementation"),
             "Which cell type is best: RNN, GRU or LSTM, uni- or bidirectional, hand-written or built-in?"),
    Question("optimizer", "Optimizer", ("optimizer",), "Which optimizer is best?"),
    Question("batch_size", "Batch size", ("batch_size",), "Which batch size is best, for the metric and for time?"),
    Question("num_layers", "Layers", ("num_layers",), "How many layers?"),
    Question("hidden_size", "Hidden size", ("hidden_size",), "How wide?"),
    Question("lr", "Learning rate", ("lr",), "Which learning rate?"),
)


@dataclass(frozen=True)
class Epoch:
    """What one pass over the training data measured: ``metrics`` are named without the ``train_`` prefix."""

    metrics: dict[str, float]  # at least "loss"
    samples: int
    steps: int  # optimizer steps


class Task(ABC):
    name: ClassVar[str]
    metrics: ClassVar[tuple[Metric, ...]]  # measured on every evaluated split, besides the loss
    objective: ClassVar[str]  # the default objective of a spec: a validation metric, e.g. "val_accuracy"
    results: ClassVar[tuple[Metric, ...]] = ()  # numbers a completed trial records once (length generalisation)
    data_options: ClassVar[type[DataOptions]]  # the spec's [data] table
    hyperparams: ClassVar[type[Hyperparams]] = Hyperparams  # a subclass adds the task's own parameters
    questions: ClassVar[tuple[Question, ...]] = QUESTIONS
    has_classes: ClassVar[bool] = False  # per-class results in the report (``class_results``)
    generates: ClassVar[bool] = False  # its models write text (``generate``): `hpsearch sample`, the report's samples
    # Bytes that training the largest model of the task's built-in spaces adds to a worker that has loaded
    # torch, MLflow and the data: --n-jobs is refused when the workers would not fit in memory. Measure it.
    training_memory: ClassVar[int]
    # Fields of Hyperparams the task's model and loss ignore, each with why: a spec may not search them, and
    # reports and MLflow do not show their defaults as if a trial had chosen them.
    unused: ClassVar[Mapping[str, str]] = {}

    # -- declarations, read by spec validation --------------------------------------------------------------
    @classmethod
    def selectable(cls) -> dict[str, Direction]:
        """Every validation metric a study may select or prune on, with its direction."""
        return {f"val_{m.name}": m.direction for m in (LOSS, *cls.metrics)}

    @classmethod
    def metric(cls, name: str) -> Metric:
        """The metric a result is named after (``val_accuracy`` -> accuracy), or one of ``results``."""
        by_name = {m.name: m for m in (LOSS, *cls.metrics, *cls.results)}
        return by_name.get(name) or by_name[name.split("_", 1)[1]]

    @classmethod
    def check_space(cls, space: Sequence[Param]) -> list[str]:
        """Problems with a spec's space that only this task knows of, as ``space.<name>: ...`` lines."""
        return [f"space.{p.name}: {cls.unused[p.name]}; remove it" for p in space if p.name in cls.unused]

    # -- data and model -------------------------------------------------------------------------------------
    @abstractmethod
    def load(self, root: str | None, options: DataOptions) -> TaskData: ...

    def build(self, hp: Hyperparams, data: TaskData) -> nn.Module:
        """A fresh model for ``data``: by default the one a checkpoint of it would restore."""
        return self.restore(hp, self.describe(data))

    @abstractmethod
    def describe(self, data: TaskData) -> dict[str, Any]:
        """What ``restore`` needs besides the hyperparameters and weights (classes, vocabulary, digits)."""

    @abstractmethod
    def restore(self, hp: Hyperparams, meta: Mapping[str, Any]) -> nn.Module: ...

    # -- training -------------------------------------------------------------------------------------------
    @abstractmethod
    def train_epoch(self, model: nn.Module, data: TaskData, optimizer: torch.optim.Optimizer, hp: Hyperparams,
                    generator: torch.Generator) -> Epoch: ...

    @abstractmethod
    def evaluate(self, model: nn.Module, data: TaskData, split: str) -> dict[str, float]:
        """``loss`` and every one of ``metrics`` on a split ("val" or "test")."""

    def baseline(self, data: TaskData) -> Baseline | None:
        """A cheap, strong reference model's results on ``data``'s validation and test splits; None where the task
        has none."""
        return None

    def final(self, model: nn.Module, data: TaskData, history: Sequence[Mapping[str, float]]) -> dict[str, Any]:
        """The ``results`` of a completed trial, from its best model and its per-epoch metrics."""
        return {}

    # -- prediction -----------------------------------------------------------------------------------------
    def queries(self, arguments: Sequence[str], lines: Sequence[str]) -> list[str]:
        """The inputs to predict, from command-line arguments, else from stdin lines: one each, by default."""
        return list(arguments or lines)

    @abstractmethod
    def predict(self, model: nn.Module, meta: Mapping[str, Any], queries: Sequence[str],
                top_k: int) -> list[dict[str, Any]]:
        """One JSON-ready row per query; raises HpsearchError for input the model cannot take."""

    @abstractmethod
    def show(self, row: Mapping[str, Any]) -> str:
        """One line of text for a row of ``predict``."""

    @abstractmethod
    def answer(self, row: Mapping[str, Any]) -> Any:
        """The prediction alone, for a served model: a row of ``predict`` as one JSON value."""

    # -- generation: a task whose models write text (makenames) -------------------------------------------
    def generate(self, model: nn.Module, meta: Mapping[str, Any], condition: str, n: int, *, temperature: float,
                 start: str, generator: torch.Generator) -> list[str]:
        """``n`` new texts written under ``condition`` (a language), each beginning with ``start``; raises
        HpsearchError for a condition or start the model cannot take."""
        raise HpsearchError(f"task {self.name} does not write text; `hpsearch sample` takes a study of a task "
                            "that does, such as makenames")

    def seen(self, meta: Mapping[str, Any]) -> Collection[str]:
        """The training texts, which a generated text must differ from to be new."""
        return ()

    def hyperparams_of(self, stored: Mapping[str, Any]) -> Hyperparams:
        """A stored configuration; fields added since it was stored keep their defaults."""
        known = {f.name for f in dataclasses.fields(self.hyperparams)}
        return self.hyperparams(**{k: v for k, v in stored.items() if k in known})
