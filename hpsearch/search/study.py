"""Create or resume a study and run the search on it. The only place that creates studies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from hpsearch.datasets import TASKS
from hpsearch.errors import HpsearchError, SpecError, StorageError
from hpsearch.search.objective import Objective
from hpsearch.search.progress import Progress
from hpsearch.search.storage import mask, open_storage
from hpsearch.search.training import TrainingDiverged, resolve_device
from hpsearch.studies import StudySpec, load_spec
from hpsearch.studies.spec import PRUNERS, SAMPLERS

BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class Interrupted(Exception):
    """Ctrl-C during a search; the message says what was kept and how to resume."""


def load(ref: str) -> StudySpec:
    return load_spec(ref, TASKS)


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the spec's study, or resume it with the same sampler and pruner settings.

    Optuna stores neither sampler nor pruner, so both are rebuilt from the spec on every start. A seeded
    sampler would replay its first suggestions on resume, so its seed is offset by the trials already run.
    """
    try:
        n_existing = len(storage.get_all_trials(storage.get_study_id_from_name(spec.name), deepcopy=False))
    except KeyError:
        n_existing = 0
    seed = spec.sampler.options.get("seed")
    study = optuna.create_study(
        study_name=spec.name, storage=storage, direction=spec.direction, load_if_exists=True,
        sampler=spec.sampler.build(SAMPLERS, **({} if seed is None else {"seed": seed + n_existing})),
        pruner=spec.pruner.build(PRUNERS))
    stored = (study.user_attrs.get("metric", spec.metric), study.direction.name.lower())
    if stored != (spec.metric, spec.direction):
        raise StorageError(f"study '{spec.name}' is stored to {stored[1]} {stored[0]}, but {spec.path} says to "
                           f"{spec.direction} {spec.metric}; give the spec another `name` or use another --workdir")
    if "metric" not in study.user_attrs:
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("task", spec.task)
        for params in spec.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def run_search(spec: StudySpec, *, storage_url: str, workdir: Path, data_dir: str | None, n_trials: int | None,
               timeout: float | None, epochs: int | None, device: str, progress: Progress) -> optuna.Study:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) ones, or ``timeout``."""
    # Progress lines replace Optuna's own logs, which print a traceback for every failed trial.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    total = n_trials or spec.n_trials
    torch_device = resolve_device(device)
    # Data first: a missing data folder must fail before the study is created or touched.
    data = TASKS[spec.task](data_dir, **dataclasses.asdict(spec.data))
    study = open_study(spec, open_storage(storage_url))
    remaining = total - len(study.get_trials(deepcopy=False, states=BUDGET_STATES))
    progress.start(study, total, remaining, mask(storage_url))
    if remaining <= 0:
        return study

    objective = Objective(spec, data, max_epochs=epochs or spec.max_epochs, device=torch_device,
                          checkpoint_dir=workdir / "checkpoints" / spec.name, on_epoch=progress.epoch)
    try:
        # MaxTrialsCallback makes the budget a study total, shared with any other worker on this study;
        # n_trials bounds this process, so trials that fail do not make it loop forever.
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(TrainingDiverged,),
                       callbacks=[optuna.study.MaxTrialsCallback(total, states=BUDGET_STATES), progress.trial])
    except KeyboardInterrupt:
        running = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        marked = f"trial {running[-1].number} was marked failed; " if running else ""
        raise Interrupted(f"interrupted: {marked}finished trials are kept. Resume with the same command.") from None
    return study


def study_name(ref: str) -> str:
    """The stored name a --study value means: its spec's name, or the value itself for a study whose spec
    is not at hand (a spec file that moved, a study made by another host)."""
    try:
        return load(ref).name
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
