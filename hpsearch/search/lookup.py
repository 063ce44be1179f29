"""Find a study: the spec a --study value names, and the study stored under its name.

Validating a spec imports its task, and with it torch; finding a stored study by name needs neither, so that
`best` starts quickly.
"""

from __future__ import annotations

import optuna

from hpsearch.errors import HpsearchError, SpecError
from hpsearch.search.storage import open_storage
from hpsearch.studies import StudySpec, load_spec
from hpsearch.studies.ablation import ABLATION_ATTR
from hpsearch.studies.spec import name_of
from hpsearch.training import TASKS
from hpsearch.urls import mask


def load(ref: str) -> StudySpec:
    return load_spec(ref, TASKS)


def study_name(ref: str) -> str:
    """The stored name a --study value means: its spec's name, or the value itself for a study whose spec
    is not at hand (a spec file that moved, a study made by another host)."""
    try:
        return name_of(ref)
    except SpecError:
        if ref.endswith(".toml"):
            raise
        return ref


def require_study(name: str, storage_url: str) -> optuna.Study:
    """A stored study, read-only use: never creates the storage or the study."""
    storage = open_storage(storage_url, create=False)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        known = ", ".join(names) or "none yet"
        raise HpsearchError(f"no study '{name}' in {mask(storage_url)} (stored: {known}); "
                            f"run `hpsearch run --study {name}` first")
    return optuna.load_study(study_name=name, storage=storage)


def classifier_of(study: optuna.Study, storage_url: str) -> optuna.Study | None:
    """A stored study of a classifying task trained on the same data as ``study`` (its data fingerprint), with a
    completed trial: it can tell which class a text ``study``'s model wrote reads as. None when there is none."""
    fingerprint = study.user_attrs.get("data", {}).get("fingerprint")
    storage = open_storage(storage_url, create=False)
    for summary in sorted(optuna.get_all_study_summaries(storage, include_best_trial=True),
                          key=lambda s: s.study_name):
        attrs = summary.user_attrs
        task = attrs.get("task")
        if (summary.study_name != study.study_name and summary.best_trial is not None and fingerprint
                and attrs.get("data", {}).get("fingerprint") == fingerprint and task in TASKS
                and TASKS[task].has_classes):
            return optuna.load_study(study_name=summary.study_name, storage=storage)
    return None


def ablations(parent: str, storage_url: str) -> list[optuna.Study]:
    """The ablation studies of a stored study (`hpsearch ablate`), by name."""
    storage = open_storage(storage_url, create=False)
    return [optuna.load_study(study_name=s.study_name, storage=storage)
            for s in sorted(optuna.get_all_study_summaries(storage, include_best_trial=False), key=lambda s: s.study_name)
            if s.user_attrs.get(ABLATION_ATTR, {}).get("parent") == parent]
