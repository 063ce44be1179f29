"""A study's report as sections of text, tables and figures, in the order a reader asks the questions."""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
import pandas as pd
from optuna.trial import TrialState

from hpsearch.report import analysis, figures
from hpsearch.report.classes import ClassResults, class_results
from hpsearch.search import results
from hpsearch.search.artifacts import Checkpoints
from hpsearch.studies import StudySpec

PARAM_COLUMNS = ["cell", "implementation", "nonlinearity", "bidirectional", "num_layers", "hidden_size",
                 "embedding_dim", "dropout", "optimizer", "lr", "momentum", "weight_decay", "batch_size",
                 "grad_clip", "lr_schedule", "class_balance"]
COSTS = {"epoch_seconds": "mean epoch seconds", "n_params": "parameter count"}


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[figures.Figure] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)


def walk(sections: list[Section], depth: int = 2):
    """Every section and subsection, in reading order, with its heading level."""
    for section in sections:
        yield section, depth
        yield from walk(section.subsections, depth + 1)


def _varying(frame: pd.DataFrame) -> list[str]:
    return [c for c in PARAM_COLUMNS if c in frame and frame[c].nunique(dropna=True) > 1]


def _duration(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def build(study: optuna.Study, spec: StudySpec, data_dir: str | None, checkpoints: Checkpoints) -> list[Section]:
    frame = analysis.trials_frame(study)
    multi = len(study.directions) > 1
    if multi:  # every section below reads the first objective, the validation metric, as "value"
        frame["value"] = frame["values_0"]
    metric = study.user_attrs.get("metric", spec.metric)
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return [_summary(study, frame, spec, metric, multi), _classes(study, spec, data_dir, checkpoints),
            _importance(study, metric), _pareto(frame, metric), _comparisons(frame, metric, maximize),
            _dynamics(study, metric, multi)]


def _summary(study: optuna.Study, frame: pd.DataFrame, spec: StudySpec, metric: str, multi: bool) -> Section:
    section = Section("Summary")
    summary = analysis.summarize(frame, spec.max_epochs)
    states = ", ".join(f"{count} {state.lower()}" for state, count in summary.states.items())
    section.text.append(f"{len(frame)} trials: {states}. Wall time {_duration(summary.wall)} from the first trial's "
                        f"start to the last one's end; {_duration(summary.compute)} of trial time in all.")
    if summary.epochs_without_pruning:
        saved = 1 - summary.epochs_trained / summary.epochs_without_pruning
        section.text.append(f"Epochs trained by the finished trials: {summary.epochs_trained} of the "
                            f"{summary.epochs_without_pruning} they would have trained without pruning "
                            f"({saved:.0%} of the compute saved).")
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        section.text.append("No completed trial yet.")
    if multi:
        section.text.append(f"A multi-objective study ({' and '.join(study.user_attrs.get('metrics', []))}): "
                            "Optuna cannot prune these, so every trial ran its full epochs. Its best trials are the "
                            "Pareto set below; the one best on the first objective is reported as the best.")
    best = (list(study.best_trials) if multi else [study.best_trial]) if completed else []
    rows = []
    for trial in best:
        attrs = trial.user_attrs
        rows.append({"trial": trial.number, **{f"value {i}": v for i, v in enumerate(trial.values)},
                     **{k: attrs.get(k) for k in ("val_accuracy", "val_balanced_accuracy", "test_accuracy",
                                                  "test_balanced_accuracy", "best_epoch", "n_params",
                                                  "epoch_seconds")},
                     **attrs.get("hyperparams", trial.params)})
    if rows:
        section.tables.append(("Best trial" if not multi else "Pareto-optimal trials",
                               pd.DataFrame(rows).set_index("trial")))
    if best:
        top = results.best_trial(study)
        attrs = top.user_attrs
        section.text.append(
            f"Best trial #{top.number}: {metric} {top.values[0]:.4f}; on the test split accuracy "
            f"{attrs.get('test_accuracy', float('nan')):.4f} and balanced accuracy "
            f"{attrs.get('test_balanced_accuracy', float('nan')):.4f} (selection used the validation split only).")
    return section


def _classes(study: optuna.Study, spec: StudySpec, data_dir: str | None, checkpoints: Checkpoints) -> Section:
    section = Section("Per-class results of the best model")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        section.text.append("No completed trial yet.")
        return section
    best = results.best_trial(study)
    per_class = class_results(best, spec, data_dir, checkpoints)
    if not isinstance(per_class, ClassResults):
        section.text.append(f"Not computed: {per_class}.")
        return section
    confused = "; ".join(f"{true} taken for {guess} {count} times" for true, guess, count in per_class.most_confused())
    worst = per_class.table["recall (accuracy)"].idxmin()
    section.text.append(f"Trial #{best.number} on the test split. Lowest recall: {worst} "
                        f"({per_class.table.loc[worst, 'recall (accuracy)']:.2f}). Most frequent confusions: "
                        f"{confused or 'none'}.")
    section.tables.append(("Per class (test split)", per_class.table))
    section.figures.append(figures.confusion(per_class.confusion))
    return section


def _importance(study: optuna.Study, metric: str) -> Section:
    section = Section("What matters")
    section.text.append("Share of the variation each parameter explains, from completed trials, by two methods; "
                        "where they agree the evidence is stronger.")
    for key, target, name in (("objective", lambda t: t.values[0], metric),
                              ("cost", lambda t: t.user_attrs.get("epoch_seconds", float("nan")),
                               "mean epoch seconds")):
        results = analysis.importances(study, target, name)
        for result in results:
            if result.values is None:
                section.text.append(f"{result.title}: {result.note}.")
        tables = {r.title: r.values for r in results if r.values is not None}
        if tables:
            table = pd.DataFrame(tables)
            section.tables.append((f"Importance for {name}", table.sort_values(table.columns[0], ascending=False)))
            if figure := figures.importance_bars(f"importance_{key}", f"Importance for {name}", results):
                section.figures.append(figure)
    return section


def _pareto(frame: pd.DataFrame, metric: str) -> Section:
    section = Section("Accuracy against cost")
    done = analysis.completed(frame).dropna(subset=["value", *[c for c in COSTS if c in frame]])
    costs = [c for c in COSTS if c in done]
    if len(done) < 2 or not costs:
        section.text.append("Fewer than two completed trials: no front to draw.")
        return section
    fronts = {cost: analysis.pareto_mask(done["value"], done[cost]) for cost in costs}
    section.text.append(f"A trial is on the front when no other completed trial has a higher {metric} at a lower "
                        "cost. Everything off the front buys nothing.")
    for cost, mask in fronts.items():
        columns = ["number", "value", cost] + _varying(done)
        section.tables.append((f"Front: {metric} against {COSTS[cost]}",
                               done.loc[mask, columns].sort_values(cost).set_index("number")))
    section.figures.append(figures.pareto(done, fronts, metric))
    return section


def _comparisons(frame: pd.DataFrame, metric: str, maximize: bool) -> Section:
    section = Section("The comparison questions")
    section.text.append("Per level: completed trials, best and median of their validation value, and the cost of "
                        "all finished trials. Trials at one level differ in every other parameter, so a level's "
                        "median is over what the sampler tried there, not a controlled pair.")
    done = analysis.finished(frame)
    for key, title, columns, question in analysis.QUESTIONS:
        part = Section(f"{title}: {question}")
        table = analysis.compare(frame, columns, metric, maximize)
        part.text.append(analysis.answer(table, frame, columns, metric, maximize))
        if table is not None:
            part.tables.append((title, table))
            level = analysis.levels(done, columns)
            part.figures.append(figures.comparison(key, title, done, level, [str(i) for i in table.index], metric))
        section.subsections.append(part)
    return section


def _dynamics(study: optuna.Study, metric: str, multi: bool) -> Section:
    section = Section("Search dynamics")
    if multi and study.best_trials:
        section.figures.append(figures.pareto_front_multi(study, study.user_attrs.get("metrics", [])))
    elif not multi and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        section.figures.append(figures.history(study, metric))
        section.figures.append(figures.learning_curves(study, metric))
    if study.trials:
        section.figures.append(figures.timeline(study))
    return section

