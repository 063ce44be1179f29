"""What a trial produced, declared once: the only place that names the user attrs a trial's results are
stored under in Optuna, and that reads them back (including from studies stored by earlier versions). Also
the study's baseline: what its trials are measured against.

(Who runs a trial, ``worker`` and ``retry_of``, belongs to ``search/liveness.py``.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.errors import HpsearchError

RESULTS_ATTR = "results"
BASELINE_ATTR = "baseline"
# Before the task plug-ins, a trial's results were user attrs of their own.
_LEGACY_RESULTS = ("val_accuracy", "val_balanced_accuracy", "test_accuracy", "test_balanced_accuracy")


@dataclass(frozen=True)
class TrialRecord:
    hyperparams: dict[str, Any] | None = None  # the full configuration, sampled and fixed values
    seed: int | None = None
    max_epochs: int | None = None  # what pruning saved is measured against it
    epochs: int | None = None  # trained, pruned or not
    best_epoch: int | None = None
    epoch_seconds: float | None = None  # mean over the epochs trained
    samples_per_second: float | None = None
    step_seconds: float | None = None  # training time per optimizer step
    n_params: int | None = None
    # A completed trial's best-epoch validation metrics (val_*), test metrics (test_*) and task results.
    results: dict[str, Any] = field(default_factory=dict)
    checkpoint_artifact: str | None = None  # artifact id of its best weights in the study's artifact store
    checkpoint: str | None = None  # before the artifact store: a path on the disk of the worker
    mlflow_run_id: str | None = None
    fail_reason: str | None = None  # Optuna keeps none for a failed trial
    ablation: dict[str, Any] | None = None  # an ablation's trial: its factor, level and repeat (studies/ablation.py)

    @property
    def diverged(self) -> bool:
        """Failed because its loss stopped being a number: an outcome of its configuration, not an accident."""
        return (self.fail_reason or "").startswith("TrainingDiverged")

    def scores(self, prefix: str = "") -> dict[str, Any]:
        """The results whose names start with ``prefix``, without the losses: what a reader compares."""
        return {k: v for k, v in self.results.items() if k.startswith(prefix) and not k.endswith("_loss")}

    def summary(self) -> dict[str, Any]:
        """The results and costs as one flat mapping (``val_accuracy``, ..., ``epochs``, ``n_params``)."""
        costs = ("best_epoch", "epochs", "epoch_seconds", "samples_per_second", "step_seconds", "n_params")
        return {**self.results, **{name: getattr(self, name) for name in costs}}

    def final_metrics(self) -> dict[str, float]:
        """The numbers of a finished run, named apart from the per-epoch metrics (``best_val_accuracy``,
        ``mean_epoch_seconds``), so that an MLflow run's epoch history gets no stray point."""
        named = {**{("best_" + k if k.startswith("val_") else k): v for k, v in self.results.items()},
                 "best_epoch": self.best_epoch, "n_params": self.n_params, "mean_epoch_seconds": self.epoch_seconds}
        return {k: v for k, v in named.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


_FIELDS = {f.name for f in dataclasses.fields(TrialRecord)}
# What belongs to one run of a trial: a copy queued again after its worker died starts without them.
PER_RUN = ("mlflow_run_id", "fail_reason")


def read(trial: FrozenTrial | optuna.Trial) -> TrialRecord:
    attrs = trial.user_attrs
    stored = {name: attrs[name] for name in _FIELDS if name in attrs}
    if RESULTS_ATTR not in attrs:
        stored["results"] = {name: attrs[name] for name in _LEGACY_RESULTS if name in attrs}
    return TrialRecord(**stored)


def write(trial: optuna.Trial, **values: Any) -> None:
    """Store fields of a trial's record; None leaves a field unset."""
    for name, value in _checked(values):
        trial.set_user_attr(name, value)


def attrs(**values: Any) -> dict[str, Any]:
    """Fields of a record as the user attrs of a trial not created yet (``Study.enqueue_trial``)."""
    return dict(_checked(values))


def store(storage: optuna.storages.BaseStorage, trial_id: int, **values: Any) -> None:
    """``write`` for a trial that is not this process's (its worker died): through the storage."""
    for name, value in _checked(values):
        storage.set_trial_user_attr(trial_id, name, value)


def _checked(values: dict[str, Any]):
    for name, value in values.items():
        if name not in _FIELDS:
            raise TypeError(f"{name!r} is not a field of TrialRecord")
        if value is not None:
            yield name, value


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best completed trial; in a multi-objective study, the Pareto-optimal one best on the first objective."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise HpsearchError(f"study '{study.study_name}' has no completed trial yet; run `hpsearch run` first")
    if len(study.directions) == 1:
        return study.best_trial
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(study.best_trials, key=lambda t: t.values[0])


@dataclass(frozen=True)
class Baseline:
    """A cheap model of the study's task, fitted on the same train split (a task's ``baseline``): what a search
    must beat to be worth it. Or why a study has none."""

    description: str | None = None
    results: dict[str, float] = field(default_factory=dict)  # the task's metrics: val_accuracy, test_accuracy, ...
    seconds: float | None = None  # to fit and score it
    missing: str | None = None  # why there is no baseline: the task has none, or it was not fitted yet


def write_baseline(study: optuna.Study, baseline: Baseline) -> None:
    study.set_user_attr(BASELINE_ATTR, {k: v for k, v in dataclasses.asdict(baseline).items() if v is not None})


def read_baseline(study: optuna.Study) -> Baseline:
    stored = study.user_attrs.get(BASELINE_ATTR)
    if stored is None:  # a study created before baselines, not resumed since
        return Baseline(missing="not fitted for this study yet: `hpsearch run` fits it when it starts or "
                                      "resumes")
    return Baseline(**stored)


SERVED_ATTR = "served_model"


@dataclass(frozen=True)
class ServedModel:
    """What ``predict`` and the MLflow model of a classification study serve (training/assembly.py)."""

    description: str  # its members with their weights, and the metric it answers for
    members: list[int | str | None]  # a member's trial or a fitted model's name; None: the baseline (before 11-27)
    results: dict[str, float]  # val_* and test_* scores
    completed: int  # completed trials when it was assembled: a later one may change it
    artifact: str  # its checkpoint's id in the study's artifact store
    # The spec's serve_metric it was assembled for: when the spec's changes, the next run assembles it again.
    # None in a model assembled before this was recorded.
    serve_metric: dict[str, float] | None = None


def write_served(study: optuna.Study, served: ServedModel) -> None:
    study.set_user_attr(SERVED_ATTR, dataclasses.asdict(served))


def read_served(study: optuna.Study) -> ServedModel | None:
    stored = study.user_attrs.get(SERVED_ATTR)
    return None if stored is None else ServedModel(**stored)
