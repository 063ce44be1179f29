"""Progress lines for a running search, on stderr so that stdout stays for results."""

from __future__ import annotations

import sys

import optuna

from hpsearch.search.budget import COUNTED


class Progress:
    def __init__(self, quiet: bool = False, max_epochs: int = 0, prefix: str = "") -> None:
        self.quiet, self.max_epochs, self.prefix = quiet, max_epochs, prefix  # prefix tells workers apart

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(f"{self.prefix}{text}", file=sys.stderr, flush=True)

    def start(self, study: optuna.Study, total: int, remaining: int, where: str) -> None:
        done = len(study.get_trials(deepcopy=False, states=COUNTED))
        if remaining <= 0:
            running = "" if done >= total else f" and {total - done} running in other workers"
            self._say(f"study '{study.study_name}' already has {done} finished trials{running} (budget {total}); "
                      "nothing to run. Raise --n-trials to search more.")
        else:
            # Enqueued trials, and those other workers of a fresh start are already running, are not a resume.
            fresh = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
            verb = "resuming" if any(t.state not in fresh for t in study.get_trials(deepcopy=False)) else "starting"
            self._say(f"{verb} study '{study.study_name}' in {where}: {done}/{total} trials done, "
                      f"running up to {remaining}")

    def trial_started(self, trial: optuna.Trial, hp: object) -> None:
        self._say(f"trial {trial.number}: {', '.join(f'{k}={_short(v)}' for k, v in trial.params.items())}")

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None:
        self._say(f"  trial {trial.number} epoch {epoch}/{self.max_epochs}: "
                  f"train loss {metrics['train_loss']:.4f}, val accuracy {metrics['val_accuracy']:.4f} "
                  f"(balanced {metrics['val_balanced_accuracy']:.4f}), {metrics['epoch_seconds']:.1f}s")

    def trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name.lower()
        value = f" value {', '.join(f'{v:.4g}' for v in trial.values)}" if trial.values else ""
        epochs = trial.user_attrs.get("epochs")
        after = f" after {epochs} epoch{'s' * (epochs != 1)}" if epochs else ""
        best = ""
        if len(study.directions) == 1 and any(t.state == optuna.trial.TrialState.COMPLETE
                                              for t in study.get_trials(deepcopy=False)):
            best = f"; best so far: trial {study.best_trial.number} ({study.best_value:.4f})"
        reason = f" ({trial.user_attrs['fail_reason']})" if "fail_reason" in trial.user_attrs else ""
        self._say(f"trial {trial.number} {state}{value}{after}{reason}{best}")


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
