"""Who runs a trial, and whether they still do.

Optuna's heartbeats find a dead worker only after the grace period, which must be long enough that a slow
epoch on a busy host is not taken for death: a study rerun at once after `kill -9` would wait minutes for a
trial nobody runs. So each trial also records the host and process that run it, and a worker on the same
host asks the operating system whether that process still exists. The process start time (and the host's
boot time) guard against a pid the system has since given to another process. Trials on other hosts are
judged by their heartbeats alone; how long ago each last beat is read from Optuna's heartbeat table, with
the database's own clock, so the hosts' clocks need not agree.
"""

from __future__ import annotations

import copy
import os
import socket
from dataclasses import asdict, dataclass

import optuna
import psutil
import sqlalchemy
import sqlalchemy.orm
from optuna.storages import RDBStorage
from optuna.storages._rdb import models  # the heartbeat table: Optuna has no public reader for it
from optuna.trial import FrozenTrial, TrialState

from hpsearch.studies import record

OWNER_ATTR = "worker"
RETRY_ATTR = "retry_of"  # on a trial queued again after its worker died: the number of the trial it retries


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: float  # the process's creation time, seconds since the epoch
    boot: float  # the host's boot time: a host of the same name that booted at another time is another machine

    @classmethod
    def this_process(cls) -> Owner:
        process = psutil.Process()
        return cls(socket.gethostname(), process.pid, process.create_time(), psutil.boot_time())

    @classmethod
    def of(cls, trial: FrozenTrial | optuna.Trial) -> Owner | None:
        """The trial's owner; None for a trial started by a version that did not record it."""
        try:
            return cls(**trial.user_attrs[OWNER_ATTR])
        except (KeyError, TypeError):
            return None

    def on_this_host(self) -> bool:
        """Same host name and boot time. A machine rebooted since counts as another host: its trial is then
        failed by its heartbeats, after the grace period, rather than a live trial on another machine of the
        same name being failed at once."""
        return self.host == socket.gethostname() and abs(self.boot - psutil.boot_time()) < 1

    def gone(self) -> bool:
        """On this host, and its process has ended (or the pid now belongs to another process)."""
        if not self.on_this_host():
            return False
        try:
            process = psutil.Process(self.pid)
            return abs(process.create_time() - self.started) > 0.01 or process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    def where(self) -> str:
        return f"in process {self.pid} on this host" if self.on_this_host() else f"on {self.host}"


def claim(trial: optuna.Trial) -> None:
    """Record this process as the trial's owner, as the trial starts."""
    trial.set_user_attr(OWNER_ATTR, asdict(Owner.this_process()))


def fail_gone(study: optuna.Study, on_failed) -> None:
    """Fail every running trial whose worker on this host has died, and pass each to ``on_failed``
    (Optuna's stale-trial callback signature), as Optuna does for trials whose heartbeats stopped."""
    storage = study._storage  # the public Study has no way to change another process's trial
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = Owner.of(trial)
        if owner is None or not owner.gone():
            continue
        try:
            record.store(storage, trial._trial_id, fail_reason=f"its worker (process {owner.pid} on {owner.host}) died")
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        on_failed(study, copy.deepcopy(storage.get_trial(trial._trial_id)))


def to_retry(trial: FrozenTrial) -> FrozenTrial:
    """A copy of a dead worker's trial to queue again: without what belonged to the dead run (its owner, its
    MLflow run, why it failed), and naming the trial it retries."""
    retry = copy.deepcopy(trial)
    retry.user_attrs = {**{k: v for k, v in trial.user_attrs.items() if k not in (OWNER_ATTR, *record.PER_RUN)},
                        RETRY_ATTR: trial.number}
    return retry


def heartbeat_ages(storage: optuna.storages.BaseStorage, study: optuna.Study) -> dict[int, float]:
    """Seconds since each running trial's last heartbeat, by trial number (RDB storages only)."""
    if not isinstance(storage, RDBStorage):
        return {}
    study_id = storage.get_study_id_from_name(study.study_name)
    with sqlalchemy.orm.Session(storage.engine) as session:
        # Like Optuna's own staleness check: the database's clock, naive datetimes for PostgreSQL too.
        now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        rows = session.execute(
            sqlalchemy.select(models.TrialModel.number, models.TrialHeartbeatModel.heartbeat)
            .join(models.TrialHeartbeatModel, models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
            .where(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.RUNNING))
        return {number: (now - beat.replace(tzinfo=None)).total_seconds() for number, beat in rows}


@dataclass(frozen=True)
class Elsewhere:
    """A trial running in another process, as a waiting worker shows it."""

    number: int
    where: str  # "on host-b", "in process 4242 on this host", or "" when its owner is not recorded
    heartbeat_age: float | None  # seconds; None before its first heartbeat


def running_elsewhere(storage: optuna.storages.BaseStorage, study: optuna.Study) -> list[Elsewhere]:
    me = os.getpid()
    ages = heartbeat_ages(storage, study)
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = Owner.of(trial)
        if owner is not None and owner.on_this_host() and owner.pid == me:
            continue
        found.append(Elsewhere(trial.number, owner.where() if owner else "", ages.get(trial.number)))
    return found
