"""The Optuna objective: sample a configuration, build and fit it epoch by epoch, report, prune, return.

What is trained, and how, is the task's (training/): this module only connects it to Optuna.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol

import optuna
import torch

from hpsearch.errors import Terminated
from hpsearch.studies import Hyperparams, StudySpec, record
from hpsearch.training import checkpoint
from hpsearch.training.loop import Fit
from hpsearch.training.task import Task, TaskData


class CheckpointSink(Protocol):
    """Where a completed trial's best weights go; returns the record fields that find them again."""

    def save(self, trial: optuna.Trial, content: bytes) -> dict[str, str]: ...


class TrialHooks(Protocol):
    """What progress output and tracking are told while a trial trains."""

    def trial_started(self, trial: optuna.Trial, hp: Hyperparams) -> None: ...

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None: ...

    def trained(self, trial: optuna.Trial, checkpoint: bytes) -> None:
        """The completed trial's checkpoint, in memory: tracking logs it without reading it back."""


# A trial's configuration and seed: sampled from the spec's space by default, planned for an ablation.
Draw = Callable[[optuna.Trial], tuple[Hyperparams, int]]


def sample(spec: StudySpec) -> Draw:
    """Draw from the spec's space; the seed follows from the values, so a configuration trains the same way
    again."""
    def draw(trial: optuna.Trial) -> tuple[Hyperparams, int]:
        hp = spec.sample(trial)
        return hp, hp.seed()

    return draw


class Objective:
    def __init__(self, spec: StudySpec, task: Task, data: TaskData, *, max_epochs: int, device: torch.device,
                 checkpoints: CheckpointSink, hooks: Sequence[TrialHooks], draw: Draw | None = None) -> None:
        self.spec, self.task, self.max_epochs, self.device = spec, task, max_epochs, device
        self.checkpoints, self.hooks = checkpoints, hooks
        self.draw = draw or sample(spec)
        self.data = data.to(device)
        self.stopped: int | None = None  # number of the last trial an exception or Ctrl-C stopped

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return self._train(trial)
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, Exception) as exc:
            self.stopped = trial.number
            if isinstance(exc, KeyboardInterrupt):
                reason = "interrupted by SIGTERM" if isinstance(exc, Terminated) else "interrupted by Ctrl-C"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            record.write(trial, fail_reason=reason)
            raise

    def _train(self, trial: optuna.Trial) -> float | tuple[float, float]:
        hp, seed = self.draw(trial)
        record.write(trial, hyperparams=dataclasses.asdict(hp), seed=seed, max_epochs=self.max_epochs)
        for hook in self.hooks:
            hook.trial_started(trial, hp)

        fit = Fit(self.task, hp, self.data, max_epochs=self.max_epochs, seed=seed, device=self.device,
                  select=self.spec.metric)
        for epoch, metrics in enumerate(fit, start=1):
            for hook in self.hooks:
                hook.epoch(trial, epoch, metrics)
            if self.spec.multi_objective:  # Optuna cannot prune these: every trial runs its epochs
                continue
            # Report the best value so far: the trial's value is its best epoch, and the pruner then compares
            # like with like, so one noisy epoch does not get a trial pruned.
            trial.report(fit.best(self.spec.prune_on), epoch)
            if trial.should_prune():
                record.write(trial, **fit.cost())
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        fitted = fit.finish()
        content = checkpoint.to_bytes(self.task, hp, self.task.describe(self.data), fitted.model.state_dict())
        record.write(trial, **fit.cost(), n_params=fitted.n_params, results=fitted.results,
                     **self.checkpoints.save(trial, content))
        for hook in self.hooks:
            hook.trained(trial, content)
        value = fitted.results[self.spec.metric]
        if self.spec.multi_objective:
            return value, float(getattr(fitted, self.spec.metrics[1]))
        return value
