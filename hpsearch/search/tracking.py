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
from hpsearch.studies import Hyperparams, StudySpec, record

PARENT_ATTR = "mlflow_parent_run_id"


class TrialTracking:
    """Trial hooks and Optuna callback that mirror a study into MLflow."""

    def __init__(self, study: optuna.Study, spec: StudySpec, tracking_uri: str, *, artifact_root: Path,
                 settings: dict[str, Any], register_as: str | None = None, log_best: bool = True) -> None:
        self.study, self.spec, self.settings = study, spec, settings
        self.register_as, self.log_best = register_as, log_best
        self.tracking = StudyTracking.open(tracking_uri, study.study_name, artifact_root=artifact_root,
                                           parent_run_id=study.user_attrs.get(PARENT_ATTR),
                                           params={"task": spec.task, "metric": ",".join(spec.metrics),
                                                   "direction": ",".join(spec.directions), **settings})
        if PARENT_ATTR not in study.user_attrs:
            study.set_user_attr(PARENT_ATTR, self.tracking.parent_run_id)
        self.runs: dict[int, str] = {}
        self.checkpoints: dict[int, bytes] = {}  # completed trials' best models, until the callback logs one

    def trial_started(self, trial: optuna.Trial, hp: Hyperparams) -> None:
        params = {**self.spec.applicable(dataclasses.asdict(hp)), **self.settings, "code_version": __version__}
        run_id = self.tracking.start_trial(self.study.study_name, trial.number, params)
        self.runs[trial.number] = run_id
        record.write(trial, mlflow_run_id=run_id)

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None:
        self.tracking.log_epoch(self.runs[trial.number], epoch, metrics)

    def trained(self, trial: optuna.Trial, checkpoint: bytes) -> None:
        self.checkpoints[trial.number] = checkpoint

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: close the trial's run, and log the model when the trial is the new best."""
        run_id = self.runs.pop(trial.number, None)
        checkpoint = self.checkpoints.pop(trial.number, None)
        if run_id is None:  # the trial failed before it started training
            return
        stored = record.read(trial)
        metrics = stored.final_metrics()
        tags = {"fail_reason": stored.fail_reason} if stored.fail_reason else {}
        if trial.state == TrialState.PRUNED:
            tags["pruned_at_epoch"] = stored.epochs or ""
        self.tracking.finish_trial(run_id, trial.state.name, metrics, tags, step=stored.epochs or 0)
        # A multi-objective study has a Pareto set, not one best model to log.
        if self.log_best and checkpoint is not None and len(study.directions) == 1 \
                and study.best_trial.number == trial.number:
            self.tracking.log_best_model(checkpoint, {"trial": trial.number, "value": trial.value, **metrics})

    def stale(self, trial: optuna.trial.FrozenTrial) -> None:
        """Close the run of a trial whose worker died (found by its missing heartbeats)."""
        stored = record.read(trial)
        if run_id := stored.mlflow_run_id:
            reason = stored.fail_reason or "its worker stopped sending heartbeats"
            self.tracking.finish_trial(run_id, "FAIL", {}, {"fail_reason": reason})

    def aborted(self, study: optuna.Study, number: int | None, interrupted: bool) -> None:
        """The search stopped on Ctrl-C or an error: close the stopped trial's run and the parent run."""
        if number in self.runs:
            reason = record.read(study.trials[number]).fail_reason or "stopped"
            state = "INTERRUPTED" if interrupted else "FAIL"
            self.tracking.finish_trial(self.runs.pop(number), state, {}, {"fail_reason": reason})
        self.tracking.close("KILLED" if interrupted else "FAILED")

    def close(self, status: str = "FINISHED") -> None:
        """End this process's part of the study: register the best model (after a clean end) and close the
        parent run with ``status``."""
        if self.register_as and status == "FINISHED":
            self.tracking.register_best(self.register_as)
        self.tracking.close(status)
