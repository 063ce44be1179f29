"""Read results back from storage: the best trial of a study, and what studies are stored."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import optuna
from optuna.trial import TrialState

from hpsearch.search.storage import open_storage
from hpsearch.studies import record

_CONTEXT = ("params", "hyperparams", "study", "trial", "metric", "value", "baseline", "served_model")


def best_summary(study: optuna.Study) -> dict[str, Any]:
    """The best completed trial: value, sampled params, what it recorded (the task's metrics on validation and
    test, costs) and the full configuration it trained with."""
    trial = record.best_trial(study)
    stored = record.read(trial)
    return {
        "study": study.study_name,
        "trial": trial.number,
        "metric": study.user_attrs.get("metric"),
        "value": trial.values[0],
        "params": trial.params,
        **stored.summary(),
        "seed": stored.seed,
        "checkpoint_artifact": stored.checkpoint_artifact,
        "hyperparams": stored.hyperparams,
        "baseline": dataclasses.asdict(record.read_baseline(study)),
        "served_model": dataclasses.asdict(served) if (served := record.read_served(study)) else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"best trial of '{summary['study']}': #{summary['trial']}, {summary['metric']} = {summary['value']:.4f}"]
    for key, value in summary.items():
        if key in _CONTEXT:
            continue
        lines.append(f"  {key:<24}{value:.4f}" if isinstance(value, float) else f"  {key:<24}{value}")
    lines.append("  params:")
    lines += [f"    {name:<22}{value:.4g}" if isinstance(value, float) else f"    {name:<22}{value}"
              for name, value in summary["params"].items()]
    baseline, served = summary["baseline"], summary["served_model"]
    if served:
        lines.append(f"served model (predict, MLflow): {served['description']}; against the best "
                     "trial:")
        lines += _against_best(served["results"], summary)
    if baseline["missing"]:
        return "\n".join([*lines, f"baseline: {baseline['missing']}"])
    lines.append(f"baseline: {baseline['description']} ({baseline['seconds']:.1f} s), against the best trial:")
    return "\n".join(lines + _against_best(baseline["results"], summary))


def _against_best(results: dict[str, float], summary: dict[str, Any]) -> list[str]:
    """A model's results, each with how far the best trial is above it."""
    return [f"  {name:<24}{value:.4f}  best trial {summary[name] - value:+.4f}" if name in summary
            else f"  {name:<24}{value:.4f}" for name, value in results.items()]


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
