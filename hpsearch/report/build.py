"""A study's report as sections of text, tables and figures, in the order a reader asks the questions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from hpsearch import sampling
from hpsearch.errors import HpsearchError
from hpsearch.report import analysis, figures
from hpsearch.report.classes import RECALL, class_results
from hpsearch.studies import StudySpec, record
from hpsearch.training import TASKS
from hpsearch.training.checkpoint import ModelSource, Trained
from hpsearch.training.classification import LabelledData, SequenceClassification, evaluate
from hpsearch.training.task import Task

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


def _varying(frame: pd.DataFrame, spec: StudySpec) -> list[str]:
    return [f.name for f in dataclasses.fields(spec.hyperparams)
            if f.name in frame and frame[f.name].nunique(dropna=True) > 1]


def _duration(delta: pd.Timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def build(study: optuna.Study, spec: StudySpec, data_dir: str | None, checkpoints: ModelSource,
          controlled: Sequence[Section] = (), judge: optuna.Study | None = None) -> list[Section]:
    """The report's sections; ``controlled`` (the study's ablations) follow the comparison questions they answer
    better. For a task that writes text, ``judge`` is a classifying study that reads the samples."""
    frame = analysis.trials_frame(study, spec)
    multi = len(study.directions) > 1
    if multi:  # every section below reads the first objective, the validation metric, as "value"
        frame["value"] = frame["values_0"]
    metric = study.user_attrs.get("metric", spec.metric)
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    task = TASKS[spec.task]
    tested = _tested(study, spec, data_dir, checkpoints) if task.has_classes else None
    sections = [_summary(study, frame, spec, metric, multi, tested)]
    if task.has_classes:
        sections.append(_classes(study, tested))
    if task.generates:
        sections.append(_samples(study, checkpoints, judge))
    if not multi:
        sections.append(_more_search(study, spec, metric))
    return [*sections, _importance(study, metric), _pareto(frame, spec, metric, maximize),
            _comparisons(frame, task, metric, maximize, bool(controlled)), *controlled, _dynamics(study, spec, multi)]


@dataclass(frozen=True)
class Tested:
    """A classification study's data and the answers of its best trial and served model on the test split (the
    class of each row), computed once for the sections that score them."""

    data: LabelledData
    task: Task
    best: torch.Tensor
    served: torch.Tensor | None

    @property
    def answering(self) -> torch.Tensor:
        return self.best if self.served is None else self.served  # what a user gets


def _tested(study: optuna.Study, spec: StudySpec, data_dir: str | None,
            checkpoints: ModelSource) -> Tested | HpsearchError | None:
    """The study's test data and models; None before a trial completed, the one-line error where they cannot be
    loaded or no longer match the data."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    try:
        best, served = checkpoints.load(record.best_trial(study)), checkpoints.served(study)
        data = best.task.load(data_dir, spec.data)
    except HpsearchError as exc:
        return exc
    for what, trained in (("the best trial", best), ("the served model", served)):
        if trained and tuple(trained.meta["classes"]) != tuple(data.classes):
            return HpsearchError(f"{what} was trained on other classes than the data found now; check --data-dir")

    def answers(trained: Trained) -> torch.Tensor:
        return evaluate(trained.model, data.split("test"), len(data.classes)).predictions

    return Tested(data, best.task, answers(best), answers(served) if served else None)


def _summary(study: optuna.Study, frame: pd.DataFrame, spec: StudySpec, metric: str, multi: bool,
             tested: Tested | HpsearchError | None) -> Section:
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
        stored = record.read(trial)
        names = study.metric_names or [f"value {i}" for i in range(len(trial.values))]
        rows.append({"trial": trial.number, **dict(zip(names, trial.values, strict=True)), **stored.scores(),
                     "best_epoch": stored.best_epoch, "n_params": stored.n_params,
                     "epoch_seconds": stored.epoch_seconds, **spec.applicable(stored.hyperparams or trial.params)})
    if rows:  # one column per trial: a row per trial would be as wide as the configuration is long
        section.tables.append(("Best trial" if not multi else "Pareto-optimal trials",
                               pd.DataFrame(rows).set_index("trial").T.rename_axis("trial", axis=1)))
    if best:
        top = record.best_trial(study)
        on_test = " and ".join(f"{name.removeprefix('test_').replace('_', ' ')} {value:.4f}"
                               for name, value in record.read(top).scores("test_").items()) or "nothing recorded"
        section.text.append(f"Best trial #{top.number}: {metric} {top.values[0]:.4f}; on the test split {on_test} "
                            "(selection used the validation split only).")
        _against_baseline(section, study, record.read(top), tested if isinstance(tested, Tested) else None)
    return section


def _against_baseline(section: Section, study: optuna.Study, best: record.TrialRecord, tested: Tested | None) -> None:
    served = record.read_served(study)
    if served:
        section.text.append(f"Served model (what `hpsearch predict` and the MLflow model answer with): "
                            f"{served.description}.")
    baseline = record.read_baseline(study)
    if baseline.missing:
        section.text.append(f"Baseline: {baseline.missing}.")
        return
    # The served model is what a user gets, so the verdict is about it where there is one.
    model, results = ("the served model", served.results) if served else ("the best trial", best.results)
    difference = f"{model[4:]} - baseline"
    rows = {name: {"best trial": best.results[name], **({"served model": served.results[name]} if served else {}),
                   "baseline": value, difference: results[name] - value}
            for name, value in baseline.results.items() if name in best.results}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("metric")
    test = table[table.index.str.startswith("test_")][difference]
    if tested and isinstance(tested.task, SequenceClassification):
        intervals = _intervals(tested)
        table["95% interval of the difference"] = pd.Series(
            {name: f"{low:+.4f} to {high:+.4f}" for name, (low, high) in intervals.items()})
        verdict = _verdict(model, test, intervals, len(tested.data.split("test")))
    else:
        margin = f"{test.min():+.4f}" + ("" if test.min() == test.max() else f" to {test.max():+.4f}")
        verdict = (f"{model.capitalize()} is ahead on every test metric (by {margin})."
                   if (test > 0).all() else f"{model.capitalize()} is not ahead on "
                   f"{', '.join(test.index[test <= 0])}: there the search has not yet paid for itself.")
    section.text.append(f"Baseline: {baseline.description} ({baseline.seconds:.1f} s). {verdict}")
    # Differences to the decimals of the scores beside them (the page shows 4 significant digits).
    section.tables.append((f"{model[4:].capitalize()} against the baseline", table.round({difference: 4})))


def _intervals(tested: Tested) -> dict[str, tuple[float, float]]:
    """95% intervals of the test scores of what a user gets minus the baseline's (fitted again: deterministic)."""
    test, classes = tested.data.split("test"), len(tested.data.classes)
    theirs = evaluate(tested.task.baseline_model(tested.data), test, classes).predictions
    found = analysis.paired_intervals(tested.answering, theirs, test.labels, classes)
    return {f"test_{name}": bounds for name, bounds in found.items()}


def _verdict(model: str, test: pd.Series, intervals: dict[str, tuple[float, float]], rows: int) -> str:
    """Ahead, behind, or not told apart on each test score: whether the difference's interval holds 0."""
    parts, states = [], set()
    for name, value in test.items():
        low, high = intervals[name]
        state = "ahead" if low > 0 else "behind" if high < 0 else "not told apart"
        states.add(state)
        parts.append(f"{name.removeprefix('test_').replace('_', ' ')} {value:+.4f} ({low:+.4f} to {high:+.4f}), "
                     f"{state}")
    return (f"{model.capitalize()} against it on the test split, with 95% intervals of the difference (a "
            f"paired bootstrap over its {rows:,} rows): {'; '.join(parts)}."
            + ("" if states == {"ahead"} else " Where it is not ahead, the search has not shown that it paid for itself; an "
                                "interval that holds 0 means the test split cannot tell the two apart."))


def _more_search(study: optuna.Study, spec: StudySpec, metric: str) -> Section:
    section = Section("Is more search worth it?")
    found = analysis.budgets(study, spec.prune_on, metric)
    if found is None:
        section.text.append("Not estimated: fewer than two finished trials have a value.")
        return section
    n = int(found.order["value"].count())
    at = dict(zip(found.trials.tolist(), found.expected.tolist(), strict=True))
    points = ", ".join(f"{k} trial{'s' if k > 1 else ''} {at[k]:.4f}"
                       for k in sorted({1, max(n // 4, 1), max(n // 2, 1), n, 2 * n}))
    which = ("completed and pruned trials (a pruned trial counts with the best value it reported)"
             if found.pruned_included else "completed trials only (the pruned ones reported another metric)")
    section.text.append(
        f"Expected best {metric} of n trials drawn like the {n} so far, from {which}, as Dodge et al. (2019, "
        f"\"Show your work\") estimate it: {points}. Going from {max(n // 2, 1)} to {n} trials improved the "
        f"expected best by {abs(at[n] - at[max(n // 2, 1)]):.4f}; the same draws predict {abs(at[2 * n] - at[n]):.4f} "
        f"more from doubling the budget to {2 * n}. The sampler learns as it goes, so its trials are not independent "
        "draws: read this as a guide to whether more trials would pay, not a promise.")
    section.figures.append(figures.budgets(found, metric))
    return section


def _classes(study: optuna.Study, tested: Tested | HpsearchError | None) -> Section:
    section = Section("Per-class results of the best model")
    if tested is None:
        section.text.append("No completed trial yet.")
        return section
    if isinstance(tested, HpsearchError):
        section.text.append(f"Not computed: {tested}.")
        return section
    best = record.best_trial(study)
    alone = class_results(tested.best, tested.data)
    # What a user gets is the served model; the best trial's recall beside it shows what the mixture changed.
    per_class = alone if tested.served is None else class_results(tested.served, tested.data)
    table = per_class.table
    if tested.served is not None:
        table = table.assign(**{f"recall of trial #{best.number} alone": alone.table[RECALL]})
        which = f"The served model ({record.read_served(study).description})"
    else:
        which = f"Trial #{best.number}"
    confused = "; ".join(f"{true} taken for {guess} {count} times" for true, guess, count in per_class.most_confused())
    worst = table[RECALL].idxmin()
    section.text.append(f"{which} on the test split; its balanced accuracy is the mean of the recall column. Lowest "
                        f"recall: {worst} ({table.loc[worst, RECALL]:.2f}). Most frequent confusions: "
                        f"{confused or 'none'}.")
    section.tables.append(("Per class (test split)", table))
    section.figures.append(figures.confusion(per_class.confusion))
    return section


SAMPLES = 50  # per condition: what the novelty and agreement of the best model's writing are measured on
SHOWN = 6


def _samples(study: optuna.Study, checkpoints: ModelSource, judge: optuna.Study | None) -> Section:
    section = Section("Samples from the best model")
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        section.text.append("No completed trial yet.")
        return section
    writer = sampling.BestModel.of(study, checkpoints)
    reader = sampling.BestModel.of(judge, checkpoints) if judge else None
    rows = {}
    for seed, condition in enumerate(writer.trained.meta["classes"]):  # one seed would start every language alike
        written = sampling.write(writer, condition, SAMPLES, temperature=1.0, start="", seed=seed, reader=reader)
        rows[condition] = {"examples": ", ".join(written.texts[:SHOWN]), "new": written.novel / SAMPLES,
                           **({"read as asked": written.agreed / SAMPLES} if reader else {})}
    table = pd.DataFrame(rows).T.rename_axis("written as")
    said = (f"{reader.name} reads {table['read as asked'].mean():.0%} as the language asked for" if reader
            else "no classifier trained on the same data is stored to say which language they read as (run one, "
                 "e.g. the surnames study, in the same work folder)")
    section.text.append(f"Trial #{writer.trial}, {SAMPLES} samples per language at temperature 1 (seeds 0, 1, ...): "
                        f"{table['new'].mean():.0%} are not training names; {said}. `hpsearch sample` writes more.")
    section.tables.append(("Samples per language", table))
    return section


def _importance(study: optuna.Study, metric: str) -> Section:
    section = Section("What matters")
    section.text.append("Share of the variation each parameter explains, from completed trials, by two methods; "
                        "where they agree the evidence is stronger.")
    for key, target, name in (("objective", lambda t: t.values[0], metric),
                              ("cost", lambda t: record.read(t).epoch_seconds or float("nan"),
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


def _pareto(frame: pd.DataFrame, spec: StudySpec, metric: str, maximize: bool) -> Section:
    section = Section("The objective against cost")
    done = analysis.completed(frame).dropna(subset=["value", *[c for c in COSTS if c in frame]])
    costs = [c for c in COSTS if c in done]
    if len(done) < 2 or not costs:
        section.text.append("Fewer than two completed trials: no front to draw.")
        return section
    gain = done["value"] if maximize else -done["value"]
    fronts = {cost: analysis.pareto_mask(gain, done[cost]) for cost in costs}
    section.text.append(f"A trial is on the front when no other completed trial has a {'higher' if maximize else 'lower'} "
                        f"{metric} at a lower cost. Everything off the front buys nothing.")
    for cost, mask in fronts.items():
        columns = ["number", "value", cost] + _varying(done, spec)
        section.tables.append((f"Front: {metric} against {COSTS[cost]}",
                               done.loc[mask, columns].sort_values(cost).set_index("number")))
    section.figures.append(figures.pareto(done, fronts, metric))
    return section


def _comparisons(frame: pd.DataFrame, task: Task, metric: str, maximize: bool, controlled: bool) -> Section:
    section = Section("The comparison questions")
    section.text.append("Per level: completed trials, best and median of their validation value, and the cost of "
                        "all finished trials. Trials at one level differ in every other parameter, so a level's "
                        "median is over what the sampler tried there, not a controlled pair.")
    if controlled:
        section.text.append("The controlled comparisons after this section vary one factor at a time with the same "
                            "seeds: where they cover a question, their answer is the stronger one.")
    done = analysis.finished(frame)
    results = tuple(m.name for m in task.results)
    for question in task.questions:
        columns = list(question.columns)
        part = Section(f"{question.title}: {question.text}")
        table = analysis.compare(frame, columns, metric, maximize, results)
        part.text.append(analysis.answer(table, frame, columns, metric, maximize))
        if table is not None:
            part.tables.append((question.title, table))
            level = analysis.levels(done, columns)
            part.figures.append(figures.comparison(question.key, question.title, done, level,
                                                   [str(i) for i in table.index], metric))
        section.subsections.append(part)
    return section


def _dynamics(study: optuna.Study, spec: StudySpec, multi: bool) -> Section:
    section = Section("Search dynamics")
    if multi and study.best_trials:
        section.figures.append(figures.pareto_front_multi(study, study.user_attrs.get("metrics", [])))
    elif not multi and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        section.figures.append(figures.history(study, study.user_attrs.get("metric", spec.metric)))
        # What each trial reported to the pruner: the best value so far of the spec's prune_on metric.
        section.figures.append(figures.learning_curves(study, spec.prune_on))
    if study.trials:
        section.figures.append(figures.timeline(study))
    return section

