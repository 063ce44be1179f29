"""Progress lines for a running search, on stderr so that stdout stays for results."""

from __future__ import annotations

import sys

import optuna

from hpsearch.search.budget import Budget
from hpsearch.search.liveness import RETRY_ATTR, Elsewhere, Owner
from hpsearch.studies import record


class Progress:
    def __init__(self, quiet: bool = False, max_epochs: int = 0, prefix: str = "") -> None:
        self.quiet, self.max_epochs, self.prefix = quiet, max_epochs, prefix  # prefix tells workers apart
        self._waiting_for: set[int] = set()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"{self.prefix}{text}", file=sys.stderr, flush=True)

    def start(self, study: optuna.Study, budget: Budget, where: str, elsewhere: list[Elsewhere]) -> None:
        done, total, remaining = budget.finished(study), budget.total, budget.remaining(study)
        if stopped := budget.stopped(study):
            self.say(f"study '{study.study_name}' {stopped}, after {done} of {total} trials; nothing to run. "
                     f"{budget.plateau.more}")
        elif done >= total:
            self.say(f"study '{study.study_name}' already has {done} finished trials (budget {total}); "
                     f"nothing to run. {budget.more}")
        elif remaining <= 0:
            self.say(f"study '{study.study_name}' has {done}/{total} trials done and the rest running in other "
                     "processes")
        else:
            # Enqueued trials, and those other workers of a fresh start are already running, are not a resume.
            fresh = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
            verb = "resuming" if any(t.state not in fresh for t in study.get_trials(deepcopy=False)) else "starting"
            self.say(f"{verb} study '{study.study_name}' in {where}: {done}/{total} trials done, "
                     f"running up to {remaining}")
        for trial in elsewhere:
            self.say(_running(trial))
        self._waiting_for = {t.number for t in elsewhere}

    def waiting(self, elsewhere: list[Elsewhere], grace: int) -> None:
        """Said when the set of trials this worker waits for changes."""
        numbers = {t.number for t in elsewhere}
        if numbers and numbers != self._waiting_for:
            self.say(f"waiting for trial{'s' * (len(numbers) > 1)} {', '.join(map(str, sorted(numbers)))} to "
                     f"finish, or to miss heartbeats for {grace} s (then this worker runs the retry):")
            for trial in elsewhere:
                self.say(f"  {_running(trial)}")
        self._waiting_for = numbers

    def dead(self, trial: optuna.trial.FrozenTrial, retried: bool, first: int | None) -> None:
        """A trial whose worker died has been marked failed."""
        owner = Owner.of(trial)
        if record.read(trial).fail_reason:  # failed here, as soon as its process was found gone
            how = f"was running in process {owner.pid} on this host, which has ended" if owner else "lost its worker"
        else:
            how = f"{owner.where() if owner else 'in another process'} sent no heartbeat for too long"
        then = "queued again with the same params" if retried else f"not queued again (it retried trial {first})"
        self.say(f"trial {trial.number} {how}: marked failed, {then}")

    def trial_started(self, trial: optuna.Trial, hp: object) -> None:
        of = f" (retry of trial {trial.user_attrs[RETRY_ATTR]})" if RETRY_ATTR in trial.user_attrs else ""
        self.say(f"trial {trial.number}{of}: {', '.join(f'{k}={_short(v)}' for k, v in trial.params.items())}")

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None:
        validation = ", ".join(f"{name.removeprefix('val_').replace('_', ' ')} {value:.4f}"
                               for name, value in metrics.items() if name.startswith("val_") and name != "val_loss")
        self.say(f"  trial {trial.number} epoch {epoch}/{self.max_epochs}: train loss {metrics['train_loss']:.4f}, "
                 f"val {validation}, {metrics['epoch_seconds']:.1f}s")

    def trained(self, trial: optuna.Trial, checkpoint: bytes) -> None:
        """Nothing to say about the checkpoint itself: the trial's line follows."""

    def trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name.lower()
        value = f" value {', '.join(f'{v:.4g}' for v in trial.values)}" if trial.values else ""
        stored = record.read(trial)
        epochs = stored.epochs
        after = f" after {epochs} epoch{'s' * (epochs != 1)}" if epochs else ""
        best = ""
        if len(study.directions) == 1 and any(t.state == optuna.trial.TrialState.COMPLETE
                                              for t in study.get_trials(deepcopy=False)):
            best = f"; best so far: trial {study.best_trial.number} ({study.best_value:.4f})"
        reason = f" ({stored.fail_reason})" if stored.fail_reason else ""
        self.say(f"trial {trial.number} {state}{value}{after}{reason}{best}")


def _running(trial: Elsewhere) -> str:
    beat = "no heartbeat yet" if trial.heartbeat_age is None else f"last heartbeat {trial.heartbeat_age:.0f} s ago"
    return f"trial {trial.number} is running {trial.where or 'in another process'}, {beat}"


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
