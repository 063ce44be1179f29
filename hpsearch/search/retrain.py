"""Retrain one trial's configuration outside the search: all epochs, no pruning, any seeds.

One configuration's result on one seed is a sample; several seeds say how much of a gap between two
configurations is the configuration and how much is luck.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
import torch

from hpsearch.datasets import load_data
from hpsearch.errors import HpsearchError, Interrupted
from hpsearch.mlflow import StudyTracking, check_reachable, tracking_uri
from hpsearch.search.artifacts import Folder
from hpsearch.search.lookup import require_study
from hpsearch.search.objective import Objective
from hpsearch.search.progress import Progress
from hpsearch.search.study import SearchOptions
from hpsearch.search.tracking import FINAL_METRICS
from hpsearch.search.training import resolve_device
from hpsearch.studies import Hyperparams, StudySpec

RESULTS = ("val_accuracy", "val_balanced_accuracy", "test_accuracy", "test_balanced_accuracy", "best_epoch",
           "epoch_seconds")


@dataclass
class _RunTracking:
    """Trial hooks that log a retraining to its own MLflow run in the study's experiment."""

    tracking: StudyTracking
    study_name: str
    source: int
    seed: int
    run_id: str | None = None

    def trial_started(self, trial: optuna.Trial, hp: Hyperparams) -> None:
        tags = {"optuna.study": self.study_name, "hpsearch.retrain_of": str(self.source),
                "hpsearch.seed": str(self.seed)}
        self.run_id = self.tracking.start_run(f"retrain-trial-{self.source}-seed-{self.seed}", tags,
                                              {**dataclasses.asdict(hp), "seed": self.seed})

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None:
        self.tracking.log_epoch(self.run_id, epoch, metrics)


def retrain(spec: StudySpec, options: SearchOptions, number: int, first_seed: int | None, n_seeds: int,
            progress: Progress) -> pd.DataFrame:
    """One row per seed (``first_seed`` and the next ones; None: the trial's own seed, which reproduces it)
    with the final metrics."""
    study = require_study(spec.name, options.storage_url)
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or not trials[number].params:
        raise HpsearchError(f"study '{spec.name}' has no trial {number} with a configuration "
                            f"(trials 0-{len(trials) - 1}); see `hpsearch best` or the report")
    source = trials[number]
    if options.threads:
        torch.set_num_threads(options.threads)
    data = load_data(spec.task, options.data_dir, **dataclasses.asdict(spec.data))
    uri = tracking_uri(options.tracking_uri, options.workdir) if options.mlflow else None
    if uri:
        check_reachable(uri)
    tracking = StudyTracking.experiment(uri, spec.name, artifact_root=options.workdir / "mlartifacts") if uri else None
    max_epochs = options.epochs or source.user_attrs.get("max_epochs", spec.max_epochs)
    rows: list[dict[str, Any]] = []
    first = source.user_attrs["seed"] if first_seed is None else first_seed  # the seed the trial trained with
    for seed in range(first, first + n_seeds):
        run = _RunTracking(tracking, spec.name, number, seed) if tracking else None
        objective = Objective(spec, data, max_epochs=max_epochs, device=resolve_device(options.device),
                              checkpoints=Folder(options.workdir / "checkpoints" / spec.name / "retrain" / f"seed-{seed}"),
                              hooks=[progress, *([run] if run else [])], seed=seed)
        # The full configuration, not only the sampled params: the spec may have gained parameters since the
        # search, and a field added to Hyperparams since then keeps the default the trial trained with.
        # A FixedTrial reports nothing and is never pruned.
        configuration = dataclasses.asdict(Hyperparams(**source.user_attrs["hyperparams"]))
        fixed = optuna.trial.FixedTrial({**configuration, **source.params}, number=number)
        try:
            objective(fixed)
        except (KeyboardInterrupt, Exception) as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            if run and run.run_id:
                tracking.finish_trial(run.run_id, "INTERRUPTED" if interrupted else "FAIL", {},
                                      {"fail_reason": fixed.user_attrs.get("fail_reason", "")})
            if interrupted:
                raise Interrupted(f"interrupted: retraining of trial {number} with seed {seed} stopped; "
                                  f"{len(rows)} seed(s) finished") from None
            raise
        attrs = fixed.user_attrs
        if run:
            tracking.finish_trial(run.run_id, "COMPLETE",
                                  {name: attrs[key] for key, name in FINAL_METRICS.items() if key in attrs}, {},
                                  step=attrs["epochs"])
        rows.append({"seed": seed, **{key: attrs.get(key) for key in RESULTS}, "mlflow_run_id": run and run.run_id})
    return pd.DataFrame(rows).set_index("seed")
