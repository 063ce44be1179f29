"""Create or resume a study and run the search on it. The only place that creates studies."""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError, SearchStopped, StorageError, Terminated
from hpsearch.folders import ensure_folder
from hpsearch.mlflow import ARTIFACTS, check_reachable, tracking_uri
from hpsearch.search import liveness
from hpsearch.search.ablation import Ablation
from hpsearch.search.artifacts import Checkpoints, location
from hpsearch.search.budget import Budget, FailureStreak, Plateau
from hpsearch.search.objective import Objective
from hpsearch.search.progress import Progress
from hpsearch.search.served import serves_ensemble
from hpsearch.search.storage import HEARTBEAT_GRACE_S, experimental_ok, open_storage
from hpsearch.search.tracking import TrialTracking
from hpsearch.studies import StudySpec, record
from hpsearch.studies.spec import PRUNERS, SAMPLERS
from hpsearch.training import TASKS
from hpsearch.training.loop import resolve_device
from hpsearch.training.task import TaskData
from hpsearch.urls import mask


def open_study(spec: StudySpec, storage: optuna.storages.BaseStorage, worker: int | None = None,
               fingerprint: str | None = None) -> optuna.Study:
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
    data = _data_attrs(spec, fingerprint)
    _check_same_data(study, spec, data)
    if "metric" not in study.user_attrs:
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("metrics", list(spec.metrics))
        study.set_user_attr("task", spec.task)
        for params in spec.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    if "data" not in study.user_attrs:  # a new study, or one stored before the data settings were kept
        study.set_user_attr("data", data)
    if study.metric_names is None:  # optuna-dashboard and the report then say val_accuracy, not "Objective 0"
        with experimental_ok():
            study.set_metric_names(list(spec.metrics))
    return study


def _data_attrs(spec: StudySpec, fingerprint: str | None) -> dict[str, Any]:
    return {**dataclasses.asdict(spec.data), **({"fingerprint": fingerprint} if fingerprint else {})}


def _check_same_data(study: optuna.Study, spec: StudySpec, data: dict[str, Any]) -> None:
    """Refuse to resume a study with another task, split or data: its trials would not be comparable."""
    stored = {"task": study.user_attrs.get("task", spec.task), **study.user_attrs.get("data", data)}
    if problem := _other_data(stored, spec, data):
        raise StorageError(f"study '{spec.name}' cannot resume: {problem}, give the spec another `name`, or use "
                           "another --workdir")


def _other_data(stored: dict[str, Any], spec: StudySpec, data: dict[str, Any]) -> str | None:
    """How the task and data settings ``stored`` with a study differ from the spec's and the data's now."""
    wanted = {"task": spec.task, **data}
    differ = [key for key in wanted if key in stored and stored[key] != wanted[key]]
    if not differ:
        return None
    if differ == ["fingerprint"]:
        return ("the data found now is not the data its trials trained on (fingerprint "
                f"{wanted['fingerprint'][:12]}, stored {stored['fingerprint'][:12]}); point --data-dir at that data")
    settings = ", ".join(f"{key} {stored[key]!r} (spec: {wanted[key]!r})" for key in differ if key != "fingerprint")
    return f"it was created with {settings}; restore them in {spec.path}"


def _objective_text(metrics, directions) -> str:
    return " and ".join(f"{d} {m}" for m, d in zip(metrics, directions, strict=False))


# How often a worker waiting for other processes' trials looks at the study again.
WAIT_POLL_S = 2


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
    artifacts: str | None = None  # artifact store for checkpoints; None: HPSEARCH_ARTIFACTS, else WORKDIR/artifacts
    heartbeat_grace: int = HEARTBEAT_GRACE_S
    threads: int | None = None  # torch threads in this process; None: torch's default
    worker: int | None = None  # index among the --n-jobs workers of one command
    stop_rule: bool = True  # end the study early by the spec's [stop] rule (--no-stop: run the whole budget)


class StaleTrials:
    """Optuna's callback for a trial whose worker died (its heartbeats stopped, or its process on this host is
    gone): close its MLflow run as FAILED, queue it once more with the same params, and say so. Tracking is
    attached once the study (which holds the parent run id) is open."""

    MAX_RETRY = 1

    def __init__(self, progress: Progress) -> None:
        with experimental_ok():
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=self.MAX_RETRY)
        self.progress = progress
        self.tracking: TrialTracking | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.tracking:
            self.tracking.stale(trial)
        with experimental_ok():
            earlier = RetryHeartbeatStaleTrialCallback.retry_history(trial)
        # The copy queued again must not carry the dead run's owner or MLflow run id.
        self.retry(study, liveness.to_retry(trial))
        self.progress.dead(trial, retried=len(earlier) < self.MAX_RETRY, first=earlier[0] if earlier else None)


def _fail_dead(session: _Session) -> None:
    """Fail (and queue again) the trials whose worker died: on this host at once, elsewhere by heartbeat."""
    with experimental_ok():
        liveness.fail_gone(session.study, session.stale)
        optuna.storages.fail_stale_trials(session.study)


def _wait_for_others(session: _Session, progress: Progress, grace: int) -> None:
    """The budget is filled, but only because trials still run in other processes: show them, and wait for
    them to finish, or to die (so that this worker runs their retries)."""
    progress.waiting(liveness.running_elsewhere(session.storage, session.study), grace)
    time.sleep(WAIT_POLL_S)
    _fail_dead(session)


@dataclass
class _Session:
    """What one process searches with: the data, the opened study and its MLflow tracking."""

    data: TaskData
    storage: optuna.storages.BaseStorage
    study: optuna.Study
    budget: Budget
    stale: StaleTrials
    checkpoints: Checkpoints
    tracking: TrialTracking | None


def load_data(spec: StudySpec, options: SearchOptions) -> TaskData:
    return TASKS[spec.task].load(options.data_dir, spec.data)


def _open_session(spec: StudySpec, options: SearchOptions, progress: Progress, data: TaskData | None = None,
                  ablation: Ablation | None = None) -> _Session:
    # Progress lines replace Optuna's own logs, which print a traceback for every failed trial.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Data first, then the tracking server: a missing folder or an unreachable server must fail before
    # the study is created or touched.
    ensure_folder(options.workdir, "--workdir")
    if data is None:
        data = load_data(spec, options)
    if ablation and (problem := _other_data(ablation.parent_data, spec, _data_attrs(spec, data.fingerprint))):
        raise StorageError(f"study '{ablation.design.parent}' trained on other data, so its trial cannot be "
                           f"ablated here: {problem}")
    uri = tracking_uri(options.tracking_uri, options.workdir) if options.mlflow else None
    if uri:
        check_reachable(uri)
    checkpoints = Checkpoints(location(options.artifacts, options.workdir), options.workdir)
    stale = StaleTrials(progress)
    storage = open_storage(options.storage_url, grace_period=options.heartbeat_grace, on_stale=stale)
    study = open_study(spec, storage, options.worker, data.fingerprint)
    if not ablation:  # an ablation compares levels with each other, not with another kind of model
        _fit_baseline(study, spec, data, progress)
    budget = ablation.prepare(study) if ablation else Budget(options.n_trials or spec.n_trials, _plateau(spec, options))
    tracking = None
    if uri and budget.finished(study) < budget.total and not budget.stopped(study):
        settings = {"max_epochs": options.epochs or spec.max_epochs, **dataclasses.asdict(spec.data),
                    "data_fingerprint": data.fingerprint, "storage": mask(options.storage_url),
                    **({"ablation_of": ablation.design.parent, "base_trial": ablation.design.base_trial}
                       if ablation else {})}
        # An ablation's best trial is a finding about a level, not a model to serve; a study that serves an
        # ensemble registers it once assembled (search/served.py), not each worker's best trial.
        register = None if serves_ensemble(spec) else options.register_model
        tracking = TrialTracking(study, spec, uri, artifact_root=options.workdir / ARTIFACTS,
                                 settings=settings, register_as=register, log_best=ablation is None)
        stale.tracking = tracking
    session = _Session(data, storage, study, budget, stale, checkpoints, tracking)
    # A worker killed earlier left its trial RUNNING: fail it (closing its run, queueing its retry) now, or
    # it would hold a place in the budget.
    _fail_dead(session)
    return session


def _plateau(spec: StudySpec, options: SearchOptions) -> Plateau | None:
    if spec.stop is None or not options.stop_rule:
        return None
    return Plateau(spec.stop.trials, spec.stop.min_delta, maximize=spec.direction == "maximize")


def _fit_baseline(study: optuna.Study, spec: StudySpec, data: TaskData, progress: Progress) -> None:
    """Once per study, before its first trial: the task's cheap reference model on the same splits."""
    if record.BASELINE_ATTR in study.user_attrs:
        return
    found = TASKS[spec.task].baseline(data)
    record.write_baseline(study, found or record.Baseline(missing=f"task {spec.task} has no cheap baseline"))
    if found is None:
        return
    scores = ", ".join(f"{name} {value:.4f}" for name, value in found.results.items())
    progress.say(f"baseline, {found.description}: {scores} ({found.seconds:.1f} s)")


def prepare_search(spec: StudySpec, options: SearchOptions, progress: Progress, data: TaskData | None = None,
                   ablation: Ablation | None = None) -> int:
    """Create or open the study and its MLflow parent run before workers start; returns the trials to run.

    Workers started together would otherwise race to create the same storage tables, experiment and
    parent run.
    """
    session = _open_session(spec, options, progress, data, ablation)
    return session.budget.remaining(session.study)


def run_search(spec: StudySpec, options: SearchOptions, progress: Progress, ablation: Ablation | None = None,
               ) -> optuna.Study:
    """Run trials until the study holds ``n_trials`` finished (complete or pruned) ones, or ``timeout``; for an
    ablation, until its queue is empty."""
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    session = _open_session(spec, options, progress, ablation=ablation)
    study, budget, tracking = session.study, session.budget, session.tracking
    progress.start(study, budget, mask(options.storage_url), liveness.running_elsewhere(session.storage, study))
    if budget.finished(study) >= budget.total or budget.stopped(study):
        return study

    failures = FailureStreak()
    hooks: list = [progress] + ([tracking] if tracking else [])
    callbacks: list = ([tracking] if tracking else []) + [budget, failures, progress.trial]
    objective = Objective(spec, TASKS[spec.task], session.data, max_epochs=options.epochs or spec.max_epochs,
                          device=device, checkpoints=session.checkpoints, hooks=hooks,
                          draw=ablation.draw if ablation else None)

    def admitted(trial: optuna.Trial) -> float:
        liveness.claim(trial)
        budget.admit(trial)
        return objective(trial)

    # The spec's time budget is a search's; an ablation runs exactly the trials it queued.
    timeout = options.timeout if options.timeout is not None or ablation else spec.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not failures.stopped and (deadline is None or time.monotonic() < deadline):
            finished, remaining = budget.finished(study), budget.remaining(study)
            if finished >= budget.total or budget.stopped(study):
                break
            if remaining <= 0:
                _wait_for_others(session, progress, options.heartbeat_grace)
                continue
            # The budget callback makes the total a study total, shared with every other worker; n_trials
            # bounds one round, after which the budget is counted again (a trial may have failed meanwhile).
            study.optimize(admitted, n_trials=remaining, catch=(Exception,), callbacks=callbacks,
                           timeout=None if deadline is None else max(deadline - time.monotonic(), 0))
            timed_out = deadline is not None and time.monotonic() >= deadline
            if budget.finished(study) == finished and budget.remaining(study) > 0 and not timed_out \
                    and not failures.stopped:
                raise HpsearchError(f"none of the last {remaining} trials finished (the last failed with "
                                    f"{failures.last!r}); fix the spec's space and resume with the same command")
    except (KeyboardInterrupt, Exception) as exc:
        # Optuna marked the trial FAIL and calls no callback for it: close its run and the parent here.
        interrupted = isinstance(exc, KeyboardInterrupt)
        if tracking:
            tracking.aborted(study, objective.stopped, interrupted)
        if not interrupted:
            raise
        how = "terminated" if isinstance(exc, Terminated) else "interrupted"
        raise SearchStopped(how, [] if objective.stopped is None else [objective.stopped]) from None
    if reason := budget.stopped(study):
        progress.say(f"{reason}. {Plateau.more}")
    elif deadline is not None and time.monotonic() >= deadline and budget.finished(study) < budget.total:
        progress.say(f"time budget of {timeout:g} s spent: {budget.finished(study)} of {budget.total} trials "
                     "finished. Run again to search on (--timeout sets another budget).")
    if failures.stopped:
        if tracking:
            tracking.close("FAILED")
        raise HpsearchError(f"stopped after {len(failures.reasons)} trials in a row failed with "
                            f"{failures.reasons[-1]!r}; fix the cause and resume with the same command")
    if tracking:
        tracking.close()
    return study
