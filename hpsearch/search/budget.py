"""When a worker starts another trial and when it stops, with any number of workers on one study.

The budget is a study total of finished (complete + pruned) trials, shared by every worker on every host.
A worker stops once the finished and running trials fill it, so workers that end together do not start
trials nobody needs. Two workers can still start trials in the same instant; each trial then checks its
place among the running ones (by start time, then number: the same order for every worker, since all read
the same stored values) and the later one steps back without training, so the study ends with exactly the
budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.studies import record

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
# Unexpected errors (not NaN losses, which belong to a configuration) this many trials in a row mean the
# error will fail every trial: the worker stops instead of burning through the budget.
FAILURE_STREAK = 3


class OverBudget(Exception):
    """Other workers filled the budget while this trial was being created; it is closed without training."""


@dataclass(frozen=True)
class Plateau:
    """The spec's stop rule, judged from the study's storage alone, so every worker on every host reaches the
    same verdict: the best value of the trials finished before the last ``trials`` is within ``min_delta`` of
    the best of all. Once reached, it stays reached: a trial that was running then and finishes better does
    not restart the search on the workers still alive (the others have gone), it is kept and reported."""

    trials: int
    min_delta: float
    maximize: bool
    more: ClassVar[str] = "Run again with --no-stop to search on."

    def reached(self, study: optuna.Study) -> str | None:
        finished = sorted(study.get_trials(deepcopy=False, states=COUNTED), key=lambda t: t.datetime_complete)
        pick = max if self.maximize else min

        def better(best: FrozenTrial | None, trial: FrozenTrial) -> FrozenTrial | None:
            if trial.state != TrialState.COMPLETE:
                return best
            return trial if best is None else pick(best, trial, key=lambda t: t.values[0])

        # best[i]: the best complete trial among the first i finished; the rule was reached once some
        # i's best is within min_delta of the best of i + trials.
        best: list[FrozenTrial | None] = [None]
        for trial in finished:
            best.append(better(best[-1], trial))
        if not any(before is not None and abs(after.values[0] - before.values[0]) <= self.min_delta
                   for before, after in zip(best, best[self.trials:])):
            return None
        return (f"stopped: no improvement above {self.min_delta:g} in the last {self.trials} trials (best "
                f"{best[-1].values[0]:.4f}, trial #{best[-1].number})")


class Budget:
    more = "Raise --n-trials to search more."  # what a user does when the budget is spent

    def __init__(self, total: int, plateau: Plateau | None = None) -> None:
        self.total, self.plateau = total, plateau

    def finished(self, study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False, states=COUNTED))

    def stopped(self, study: optuna.Study) -> str | None:
        """Why the stop rule ended the study before its budget, if it did."""
        return self.plateau.reached(study) if self.plateau else None

    def remaining(self, study: optuna.Study) -> int:
        """Trials still to start: the budget less the finished trials and those running now; none once the
        stop rule has ended the study."""
        if self.stopped(study):
            return 0
        return self.total - len(study.get_trials(deepcopy=False, states=(*COUNTED, TrialState.RUNNING)))

    def admit(self, trial: optuna.Trial) -> None:
        """Called as a trial starts: raises OverBudget when finished and earlier-started trials fill the budget."""
        me = (trial.datetime_start, trial.number)
        ahead = [t for t in trial.study.get_trials(deepcopy=False, states=(*COUNTED, TrialState.RUNNING))
                 if t.state in COUNTED or (t.number != trial.number and (t.datetime_start, t.number) < me)]
        if len(ahead) >= self.total:
            record.write(trial, fail_reason=f"not run: other workers filled the budget of {self.total} trials")
            raise OverBudget()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback after every trial: stop this worker once the budget is filled or spoken for."""
        if self.remaining(study) <= 0:
            study.stop()


class Queue(Budget):
    """An ablation's budget: exactly the trials it queued, whatever state they end in, shared by every worker.

    A trial that starts when other workers have emptied the queue meanwhile gets a fresh configuration from
    the sampler, which is none of the planned ones: it steps back without training.
    """

    more = "Add --repeats, or factors or levels, to run more."

    def __init__(self, total: int, queued: Callable[[optuna.Trial], bool]) -> None:
        super().__init__(total)
        self.queued = queued

    def finished(self, study: optuna.Study) -> int:
        return max(0, self.total - len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,
                                                                                  TrialState.RUNNING))))

    def remaining(self, study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def admit(self, trial: optuna.Trial) -> None:
        if not self.queued(trial):
            record.write(trial, fail_reason="not run: the ablation's queue was empty")
            raise OverBudget()


class FailureStreak:
    """Optuna callback that stops the worker after FAILURE_STREAK unexpected errors in a row."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.last = ""  # why this worker's last failed trial failed, whatever the cause

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        stored = record.read(trial)
        reason = stored.fail_reason or ""
        if trial.state == TrialState.FAIL:
            self.last = reason
        if trial.state != TrialState.FAIL or stored.diverged or reason.startswith("not run"):
            self.reasons.clear()
            return
        self.reasons.append(reason)
        if self.stopped:
            study.stop()

    @property
    def stopped(self) -> bool:
        return len(self.reasons) >= FAILURE_STREAK
