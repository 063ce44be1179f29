"""Create or resume a study and run the search on it. The only place that creates studies."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpsearch.datasets import TASKS
from hpsearch.errors import HpsearchError, SpecError, StorageError, Terminated
from hpsearch.mlflow import check_reachable, tracking_uri
from hpsearch.search.budget import Budget, FailureStreak
from hpsearch.search.objective import Objective
from hpsearch.search.progress import Progress
from hpsearch.search.storage import HEARTBEAT_GRACE_S, experimental_ok, open_storage
from hpsearch.search.tracking import TrialTracking
from hpsearch.search.training import resolve_device
from hpsearch.studies import StudySpec, load_spec
from hpsearch.studies.spec import PRUNERS, SAMPLERS
from hpsearch.urls import mask


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a search; the message says what was kept and how to resume."""


def load(ref: str) -> StudySpec:
    return load_spec(ref, TASKS)


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage, worker: int | None = None) -> optuna.Study:
    """Create the spec's study, or resume it with the same sampler and pruner settings.

    Optuna stores neither sampler nor pruner, so both are rebuilt from the spec on every start. A seeded
    sampler would replay its first suggestions on resume, so its seed is offset by the trials already run.
    Workers must not share a seed either, or they propose the same configurations. Nothing they share tells
    them apart (indexes and process ids repeat across hosts), so a worker of --n-jobs, and a process joining
    trials that are running elsewhere, add a random offset: a search with several workers depends on their
    timing, so it is not reproducible anyway.
    """
    try:
        trials = storage.get_all_trials(storage.get_study_id_from_name(spec.name), deepcopy=False)
    except KeyError:
        trials = []
    seed = spec.sampler.options.get("seed")
    if seed is not None:
        seed += len(trials)
        if worker is not None or any(t.state == TrialState.RUNNING for t in trials):
            seed += secrets.randbits(32)
    study = optuna.create_study(
        study_name=spec.name, storage=storage, directions=list(spec.directions), load_if_exists=True,
        sampler=spec.sampler.build(SAMPLERS, **({} if seed is None else {"seed": seed % 2**32})),
        pruner=spec.pruner.build(PRUNERS))
    # A new study has no metric attrs yet; one from before multi-objective specs has only "metric".
    metrics = study.user_attrs.get("metrics", [study.user_attrs["metric"]] if "metric" in study.user_attrs
                                   else list(spec.metrics))
    stored = (metrics, [d.name.lower() for d in study.directions])
    if stored != (list(spec.metrics), list(spec.directions)):
        raise StorageError(f"study '{spec.name}' is stored to {_objective_text(*stored)}, but {spec.path} says to "
                           f"{_objective_text(spec.metrics, spec.directions)}; give the spec another `name` or "
                           "use another --workdir")
    if "metric" not in study.user_attrs:
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("metrics", list(spec.metrics))
        study.set_user_attr("task", spec.task)
        for params in spec.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def _objective_text(metrics, directions) -> str:
    return " and ".join(f"{d} {m}" for m, d in zip(metrics, directions, strict=False))


@dataclass(frozen=True)
class SearchOptions:
    storage_url: str
    workdir: Path
    data_dir: str | None = None
    n_trials: int | None = None  # study total of finished trials; None: the spec's
    timeout: float | None = None
    epochs: int | None = None  # max epochs per trial; None: the spec's
    device: str = "auto"
    tracking_uri: str | None = None  # MLflow; None: MLFLOW_TRACKING_URI, else SQLite in the working folder
    mlflow: bool = True
    register_model: str | None = None
    heartbeat_grace: int = HEARTBEAT_GRACE_S
    threads: int | None = None  # torch threads in this process; None: torch's default
    worker: int | None = None  # index among the --n-jobs workers of one command


class StaleTrials:
    """Optuna's callback for a trial whose worker died: retry it once with the same params, and close its
    MLflow run as FAILED. Tracking is attached once the study (which holds the parent run id) is open."""

    def __init__(self) -> None:
        with experimental_ok():
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
        self.tracking: TrialTracking | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.tracking:
            self.tracking.stale(trial)
        self.retry(study, trial)


@dataclass
class _Session:
    """What one process searches with: the data, the opened study and its MLflow tracking."""

    data: Any
    study: optuna.Study
    budget: Budget
    tracking: TrialTracking | None


def _open_session(spec: StudySpec, options: SearchOptions) -> _Session:
    # Progress lines replace Optuna's own logs, which print a traceback for every failed trial.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Data first, then the tracking server: a missing folder or an unreachable server must fail before
    # the study is created or touched.
    data = TASKS[spec.task](options.data_dir, **dataclasses.asdict(spec.data))
    uri = tracking_uri(options.tracking_uri, options.workdir) if options.mlflow else None
    if uri:
        check_reachable(uri)
    stale = StaleTrials()
    study = open_study(spec, open_storage(options.storage_url, grace_period=options.heartbeat_grace,
                                          on_stale=stale), options.worker)
    budget = Budget(options.n_trials or spec.n_trials)
    tracking = None
    if uri and budget.finished(study) < budget.total:
        settings = {"max_epochs": options.epochs or spec.max_epochs, **dataclasses.asdict(spec.data),
                    "data_fingerprint": data.fingerprint, "storage": mask(options.storage_url)}
        tracking = TrialTracking(study, spec, uri, artifact_root=options.workdir / "mlartifacts", settings=settings,
                                 register_as=options.register_model)
        stale.tracking = tracking
    # A worker killed earlier left its trial RUNNING: fail it (closing its run, queueing its retry) now, or
    # it would hold a place in the budget until some worker's next trial starts.
    with experimental_ok():
        optuna.storages.fail_stale_trials(study)
    return _Session(data, study, budget, tracking)


def prepare_search(spec: StudySpec, options: SearchOptions) -> int:
    """Create or open the study and its MLflow parent run before workers start; returns the trials to run.

    Workers started together would otherwise race to create the same storage tables, experiment and
    parent run.
    """
    session = _open_session(spec, options)
    return session.budget.remaining(session.study)


def run_search(spec: StudySpec, options: SearchOptions, progress: Progress) -> optuna.Study:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) ones, or ``timeout``."""
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    session = _open_session(spec, options)
    study, budget, tracking = session.study, session.budget, session.tracking
    remaining = budget.remaining(study)
    progress.start(study, budget.total, remaining, mask(options.storage_url))
    if remaining <= 0:
        return study

    failures = FailureStreak()
    hooks: list = [progress] + ([tracking] if tracking else [])
    callbacks: list = ([tracking] if tracking else []) + [budget, failures, progress.trial]
    objective = Objective(spec, session.data, max_epochs=options.epochs or spec.max_epochs, device=device,
                          checkpoint_dir=options.workdir / "checkpoints" / spec.name, hooks=hooks)

    def admitted(trial: optuna.Trial) -> float:
        budget.admit(trial)
        return objective(trial)

    try:
        # The budget callback makes the total a study total, shared with every other worker; n_trials bounds
        # this process, so trials that keep failing do not make it loop forever.
        study.optimize(admitted, n_trials=remaining, timeout=options.timeout, catch=(Exception,),
                       callbacks=callbacks)
    except (KeyboardInterrupt, Exception) as exc:
        # Optuna marked the trial FAIL and calls no callback for it: close its run and the parent here.
        interrupted = isinstance(exc, KeyboardInterrupt)
        if tracking:
            tracking.aborted(study, objective.stopped, interrupted)
        if not interrupted:
            raise
        marked = "" if objective.stopped is None else f"trial {objective.stopped} was marked failed; "
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        raise Interrupted(f"{how}: {marked}finished trials are kept. Resume with the same command.") from None
    if failures.stopped:
        if tracking:
            tracking.close("FAILED")
        raise HpsearchError(f"stopped after {len(failures.reasons)} trials in a row failed with "
                            f"{failures.reasons[-1]!r}; fix the cause and resume with the same command")
    if tracking:
        tracking.close()
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
