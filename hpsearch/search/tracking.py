"""The Optuna side of MLflow tracking: which run belongs to which study and trial, and when runs close.

The parent run's id lives in a study user attr and each trial's run id in the trial user attr
``mlflow_run_id``, so either side finds the other and a resumed study reopens the same parent run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch import __version__
from hpsearch.mlflow import StudyTracking
from hpsearch.search.artifacts import Checkpoints
from hpsearch.studies import Hyperparams, StudySpec

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
# Trial user attr -> final metric; named apart from the per-epoch metrics so no history gets a stray point.
FINAL_METRICS = {"val_accuracy": "best_val_accuracy", "val_balanced_accuracy": "best_val_balanced_accuracy",
                 "test_accuracy": "test_accuracy", "test_balanced_accuracy": "test_balanced_accuracy",
                 "best_epoch": "best_epoch", "n_params": "n_params", "epoch_seconds": "mean_epoch_seconds"}


class TrialTracking:
    """Trial hooks and Optuna callback that mirror a study into MLflow."""

    def __init__(self, study: optuna.Study, spec: StudySpec, tracking_uri: str, checkpoints: Checkpoints, *,
                 artifact_root: Path, settings: dict[str, Any], register_as: str | None = None) -> None:
        self.study, self.settings, self.register_as = study, settings, register_as
        self.checkpoints = checkpoints
        self.tracking = StudyTracking.open(tracking_uri, study.study_name, artifact_root=artifact_root,
                                           parent_run_id=study.user_attrs.get(PARENT_ATTR),
                                           params={"task": spec.task, "metric": ",".join(spec.metrics),
                                                   "direction": ",".join(spec.directions), **settings})
        if PARENT_ATTR not in study.user_attrs:
            study.set_user_attr(PARENT_ATTR, self.tracking.parent_run_id)
        self.runs: dict[int, str] = {}

    def trial_started(self, trial: optuna.Trial, hp: Hyperparams) -> None:
        params = {**dataclasses.asdict(hp), **self.settings, "code_version": __version__}
        run_id = self.tracking.start_trial(self.study.study_name, trial.number, params)
        self.runs[trial.number] = run_id
        trial.set_user_attr(RUN_ATTR, run_id)

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None:
        self.tracking.log_epoch(self.runs[trial.number], epoch, metrics)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: close the trial's run, and log the model when the trial is the new best."""
        run_id = self.runs.pop(trial.number, None)
        if run_id is None:  # the trial failed before it started training
            return
        attrs = trial.user_attrs
        metrics = {name: attrs[key] for key, name in FINAL_METRICS.items() if key in attrs}
        tags = {"fail_reason": attrs["fail_reason"]} if "fail_reason" in attrs else {}
        if trial.state == TrialState.PRUNED:
            tags["pruned_at_epoch"] = attrs.get("epochs", "")
        self.tracking.finish_trial(run_id, trial.state.name, metrics, tags, step=attrs.get("epochs", 0))
        # A multi-objective study has a Pareto set, not one best model to log.
        if trial.state == TrialState.COMPLETE and len(study.directions) == 1 \
                and study.best_trial.number == trial.number:
            summary = {"trial": trial.number, "value": trial.value, **metrics}
            self.tracking.log_best_model(self.checkpoints.load(trial), summary)

    def stale(self, trial: optuna.trial.FrozenTrial) -> None:
        """Close the run of a trial whose worker died (found by its missing heartbeats)."""
        if run_id := trial.user_attrs.get(RUN_ATTR):
            reason = trial.user_attrs.get("fail_reason", "its worker stopped sending heartbeats")
            self.tracking.finish_trial(run_id, "FAIL", {}, {"fail_reason": reason})

    def aborted(self, study: optuna.Study, number: int | None, interrupted: bool) -> None:
        """The search stopped on Ctrl-C or an error: close the stopped trial's run and the parent run."""
        if number in self.runs:
            reason = study.trials[number].user_attrs.get("fail_reason", "stopped")
            state = "INTERRUPTED" if interrupted else "FAIL"
            self.tracking.finish_trial(self.runs.pop(number), state, {}, {"fail_reason": reason})
        self.tracking.close("KILLED" if interrupted else "FAILED")

    def close(self, status: str = "FINISHED") -> None:
        """End this process's part of the study: register the best model (after a clean end) and close the
        parent run with ``status``."""
        if self.register_as and status == "FINISHED":
            self.tracking.register_best(self.register_as)
        self.tracking.close(status)
