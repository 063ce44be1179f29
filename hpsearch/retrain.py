"""Retrain one trial's configuration outside the search: all epochs, no pruning, any seeds.

One configuration's result on one seed is a sample; several seeds say how much of a gap between two
configurations is the configuration and how much is luck. Each seed is its own MLflow run in the study's
experiment, tagged with the trial it retrains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from hpsearch.errors import HpsearchError, Interrupted
from hpsearch.mlflow import ARTIFACTS, StudyTracking, check_reachable
from hpsearch.studies import StudySpec, record
from hpsearch.training import TASKS, checkpoint
from hpsearch.training.loop import Fit, resolve_device


@dataclass(frozen=True)
class Retraining:
    workdir: Path  # seed S's best weights go to WORKDIR/checkpoints/STUDY/retrain/seed-S/trial-N.pt
    data_dir: str | None = None
    epochs: int | None = None  # None: the epochs the trial was given
    device: str = "auto"
    tracking_uri: str | None = None  # None: no MLflow runs


def retrain(study: optuna.Study, spec: StudySpec, number: int, first_seed: int | None, n_seeds: int,
            how: Retraining, progress: Any) -> pd.DataFrame:
    """One row per seed (``first_seed`` and the next ones; None: the trial's own seed, which reproduces it)
    with its results. ``progress`` is told of each epoch, as during the search."""
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or not trials[number].params:
        raise HpsearchError(f"study '{spec.name}' has no trial {number} with a configuration "
                            f"(trials 0-{len(trials) - 1}); see `hpsearch best` or the report")
    source, task = trials[number], TASKS[spec.task]
    stored = record.read(source)
    # Exactly what the trial trained with; a parameter added to the task since then keeps its default.
    hp = task.hyperparams_of(stored.hyperparams or source.params)
    device = resolve_device(how.device)
    # The data first: missing data must fail before anything is created in the tracking store.
    data = task.load(how.data_dir, spec.data).to(device)
    tracking = None
    if how.tracking_uri:
        check_reachable(how.tracking_uri)
        tracking = StudyTracking.experiment(how.tracking_uri, spec.name, artifact_root=how.workdir / ARTIFACTS)
    max_epochs = how.epochs or stored.max_epochs or spec.max_epochs
    rows: list[dict[str, Any]] = []
    first = stored.seed if first_seed is None else first_seed
    for seed in range(first, first + n_seeds):
        run_id = None
        if tracking:
            tags = {"optuna.study": spec.name, "hpsearch.retrain_of": str(number), "hpsearch.seed": str(seed)}
            run_id = tracking.start_run(f"retrain-trial-{number}-seed-{seed}", tags,
                                        {**dataclasses.asdict(hp), "seed": seed})
        progress.trial_started(source, hp)
        fit = Fit(task, hp, data, max_epochs=max_epochs, seed=seed, device=device, select=spec.metric)
        try:
            for epoch, metrics in enumerate(fit, start=1):
                progress.epoch(source, epoch, metrics)
                if run_id:
                    tracking.log_epoch(run_id, epoch, metrics)
            fitted = fit.finish()
        except (KeyboardInterrupt, Exception) as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            if run_id:
                tracking.finish_trial(run_id, "INTERRUPTED" if interrupted else "FAIL", {},
                                          {"fail_reason": "interrupted" if interrupted else f"{type(exc).__name__}: {exc}"})
            if interrupted:
                raise Interrupted(f"interrupted: retraining of trial {number} with seed {seed} stopped; "
                                  f"{len(rows)} seed(s) finished") from None
            raise
        folder = how.workdir / "checkpoints" / spec.name / "retrain" / f"seed-{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"trial-{number}.pt").write_bytes(
            checkpoint.to_bytes(task, hp, task.describe(data), fitted.model.state_dict()))
        result = record.TrialRecord(results=fitted.results, best_epoch=fitted.best_epoch,
                                    epoch_seconds=fitted.epoch_seconds, n_params=fitted.n_params)
        if run_id:
            tracking.finish_trial(run_id, "COMPLETE", result.final_metrics(), {}, step=fitted.epochs)
        rows.append({"seed": seed, **result.scores(), "best_epoch": fitted.best_epoch,
                     "epoch_seconds": fitted.epoch_seconds, "mlflow_run_id": run_id})
    return pd.DataFrame(rows).set_index("seed")
