"""The Optuna side of an ablation: its own study beside the parent's (its trials must not feed the parent's
sampler or importances), a queue of planned trials that any number of workers and hosts share, and the
draw that turns a queued trial into its configuration and seed.

Every planned trial is queued with ``enqueue_trial(skip_if_exists=True)``: running ``ablate`` again resumes
instead of repeating, and queues only what a larger design adds. A trial that failed (an error, Ctrl-C) is
queued again; one whose loss diverged is a result of its level and is not.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from hpsearch.errors import HpsearchError, StorageError
from hpsearch.search.budget import Queue
from hpsearch.studies import Hyperparams, StudySpec, record
from hpsearch.studies.ablation import ABLATION_ATTR, Design, Run, levels, parse_factor
from hpsearch.studies.spec import NAME_PATTERN, Component, Param
from hpsearch.training import TASKS

SUFFIX = ":ablation"
_SETTLED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class Ablation:
    """What every worker of an ablation needs (it crosses to spawned workers, so it is plain data)."""

    name: str  # of the ablation's study
    design: Design
    spec: StudySpec  # the ablation study's: the parent's task, data and objective; no sampler or pruner at work
    parent_data: dict[str, Any]  # the parent study's task and data settings: the ablation must train on the same

    def draw(self, trial: optuna.Trial) -> tuple[Hyperparams, int]:
        """The configuration and seed of a queued trial. Its params are suggested from one-value ranges, so
        that levels added later never clash with a distribution Optuna has stored."""
        run = Run(**record.read(trial).ablation)
        trial.suggest_int("repeat", run.repeat, run.repeat)
        if run.factor:
            _suggest(trial, run.factor, run.level, typing.get_type_hints(self.spec.hyperparams)[run.factor])
        return self.design.hyperparams(run, self.spec.hyperparams), self.design.seed_of(run.repeat)

    def prepare(self, study: optuna.Study) -> Queue:
        """Check the stored design is this one's, store the union of both, and queue what is not done."""
        stored = study.user_attrs.get(ABLATION_ATTR)
        design = self.design
        if stored is not None:
            earlier = Design.from_attr(stored)
            if why := design.differs(earlier):
                raise StorageError(f"ablation study '{self.name}' cannot take these trials: {why}; pass --base "
                                   f"{earlier.base_trial} (and the same --epochs) to add to it, or --name "
                                   f"{design.parent}{SUFFIX}-{design.base_trial} for a new ablation")
            design = design.joined(earlier)  # the report shows every factor either asked for
        study.set_user_attr(ABLATION_ATTR, design.to_attr())
        trials = [(t, record.read(t)) for t in study.get_trials(deepcopy=False)]
        tried = {_key(Run(**r.ablation).params) for _, r in trials if r.ablation}
        settled = {_key(Run(**r.ablation).params) for t, r in trials if r.ablation and
                   (t.state in _SETTLED or r.diverged)}
        runs = self.design.runs()
        for run in runs:
            key = _key(run.params)
            if key not in settled:
                # A failed run's params exist already: skip_if_exists would find them and queue nothing.
                study.enqueue_trial(run.params, user_attrs=record.attrs(ablation=dataclasses.asdict(run)),
                                    skip_if_exists=key not in tried)
        return Queue(len(runs), queued=lambda trial: record.read(trial).ablation is not None)


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def _suggest(trial: optuna.Trial, name: str, value: Any, kind: Any) -> None:
    """Optuna refuses a categorical whose choices change between trials: choices are the type's every value."""
    if typing.get_origin(kind) is Literal:
        trial.suggest_categorical(name, list(typing.get_args(kind)))
    elif kind is bool:
        trial.suggest_categorical(name, [False, True])
    elif kind is int:
        trial.suggest_int(name, value, value)
    else:
        trial.suggest_float(name, float(value), float(value))


def plan(parent: optuna.Study, spec: StudySpec, factors: tuple[str, ...], *, repeats: int, base: str,
         epochs: int | None, metric: str | None, name: str | None) -> Ablation:
    """The ablation a user asked for, checked against the parent study; one-line HpsearchError otherwise."""
    name = name or f"{parent.study_name}{SUFFIX}"
    if not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise HpsearchError(f"--name {name!r}: use letters, digits and -_.: starting with a letter or digit")
    if name == parent.study_name:
        raise HpsearchError(f"--name {name!r} is the parent study; an ablation needs a study of its own")
    trial = _base_trial(parent, base)
    stored = record.read(trial)
    task = TASKS[spec.task]
    hp = task.hyperparams_of(stored.hyperparams or trial.params)
    config = dataclasses.asdict(hp)
    chosen: dict[str, tuple] = {}
    for text in factors:
        factor, given = parse_factor(text)
        chosen[factor] = levels(factor, given, spec, config)
    if problems := task.check_space([Param(n, "categorical", choices=v) for n, v in chosen.items()]):
        raise HpsearchError("; ".join(f"--factor {p.removeprefix('space.')}" for p in problems))
    rank_by = metric or spec.metric
    known = _rankable(task)
    if rank_by not in known:
        raise HpsearchError(f"--metric {rank_by}: not a recorded metric of task {spec.task} (known: {', '.join(known)})")
    design = Design(parent=parent.study_name, base_trial=trial.number, base=config,
                    seed=stored.seed if stored.seed is not None else hp.seed(),
                    max_epochs=epochs or stored.max_epochs or spec.max_epochs, factors=chosen, repeats=repeats,
                    rank_by=rank_by, maximize=known[rank_by] == "maximize")
    ablation_spec = dataclasses.replace(spec, name=name, metrics=spec.metrics[:1], directions=spec.directions[:1],
                                        max_epochs=design.max_epochs, sampler=Component("random"),
                                        pruner=Component("none"), space=(), enqueue=())
    parent_data = {"task": parent.user_attrs.get("task", spec.task), **parent.user_attrs.get("data", {})}
    return Ablation(name, design, ablation_spec, parent_data)


def _base_trial(parent: optuna.Study, base: str) -> optuna.trial.FrozenTrial:
    if base == "best":
        return record.best_trial(parent)
    completed = [t.number for t in parent.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    listed = ", ".join(map(str, completed[:20])) + (", ..." if len(completed) > 20 else "") or "none yet"
    if not base.isdigit() or int(base) not in completed:
        raise HpsearchError(f"--base {base}: not a completed trial of study '{parent.study_name}'; give best or "
                            f"the number of a completed trial ({listed})")
    return parent.trials[int(base)]


def _rankable(task) -> dict[str, str]:
    """What the report can rank levels by: every validation and test metric, and the task's results."""
    metrics = {f"{split}_{m.name}": m.direction for m in task.metrics for split in ("val", "test")}
    return {**metrics, **{f"{split}_loss": "minimize" for split in ("val", "test")},
            **{m.name: m.direction for m in task.results}}
