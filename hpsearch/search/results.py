"""Read results back from storage: the best trial of a study, and what studies are stored."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError
from hpsearch.search.storage import open_storage

SUMMARY_ATTRS = ("val_accuracy", "val_balanced_accuracy", "test_accuracy", "test_balanced_accuracy",
                 "best_epoch", "epochs", "epoch_seconds", "samples_per_second", "n_params", "seed", "checkpoint_artifact")


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best completed trial; in a multi-objective study, the Pareto-optimal one best on the first objective."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise HpsearchError(f"study '{study.study_name}' has no completed trial yet; run `hpsearch run` first")
    if len(study.directions) == 1:
        return study.best_trial
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(study.best_trials, key=lambda t: t.values[0])


def best_summary(study: optuna.Study) -> dict[str, Any]:
    """The best completed trial: value, sampled params, metrics and the full configuration it trained with."""
    trial = best_trial(study)
    return {
        "study": study.study_name,
        "trial": trial.number,
        "metric": study.user_attrs.get("metric"),
        "value": trial.values[0],
        "params": trial.params,
        **{key: trial.user_attrs.get(key) for key in SUMMARY_ATTRS},
        "hyperparams": trial.user_attrs.get("hyperparams"),
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"best trial of '{summary['study']}': #{summary['trial']}, {summary['metric']} = {summary['value']:.4f}"]
    for key in SUMMARY_ATTRS:
        value = summary[key]
        lines.append(f"  {key:<24}{value:.4f}" if isinstance(value, float) else f"  {key:<24}{value}")
    lines.append("  params:")
    lines += [f"    {name:<22}{value:.4g}" if isinstance(value, float) else f"    {name:<22}{value}"
              for name, value in summary["params"].items()]
    return "\n".join(lines)


def stored_studies(storage_url: str) -> list[dict[str, Any]]:
    """Every study in the storage with its trial counts by state and best value."""
    storage = open_storage(storage_url, create=False)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = Counter(t.state.name.lower() for t in trials)
        complete = [t.values[0] for t in trials if t.state == TrialState.COMPLETE]
        pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
        rows.append({"name": summary.study_name, "metric": study.user_attrs.get("metric"),
                     "direction": study.directions[0].name.lower(), "trials": len(trials),
                     **{state.name.lower(): counts[state.name.lower()] for state in TrialState},
                     "best": pick(complete) if complete else None})
    return rows
