"""The numbers of a report, computed from a study's stored trials with pandas and optuna.importance."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from hpsearch.studies import StudySpec, record
from hpsearch.training.classification import SCORES, scores

FEW = 3  # a level with fewer completed trials than this gets an explicit caution
MAX_BINS = 5  # a numeric parameter's levels: at most this many ranges, and about FEW trials in each
MIN_FOR_IMPORTANCE = 5  # completed trials before importances mean anything

def trials_frame(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """One row per trial: optuna's trials_dataframe (state, value, times) joined with what each trial recorded:
    its results, costs and configuration (sampled and fixed values) as plain columns; what the trial never used
    (``StudySpec.applicable``: a GRU's nonlinearity) is empty (NaN)."""
    value = "value" if len(study.directions) == 1 else "values"  # multi-objective: values_0, values_1
    frame = study.trials_dataframe(attrs=("number", value, "datetime_start", "datetime_complete", "duration",
                                          "state"), multi_index=False)
    # With metric names set, optuna names these columns value_<name>, values_<name>: the report reads them by
    # position, as value (or values_0, values_1).
    if study.metric_names:
        names = [f"{value}_{name}" for name in study.metric_names]
        positions = ["value"] if value == "value" else [f"values_{i}" for i in range(len(names))]
        frame = frame.rename(columns=dict(zip(names, positions, strict=True)))
    records = [record.read(trial) for trial in study.get_trials(deepcopy=False)]
    details = pd.DataFrame([{**r.summary(), "max_epochs": r.max_epochs, **spec.applicable(r.hyperparams or {})}
                            for r in records],
                           index=frame.index)
    return frame.join(details)


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["state"].isin(["COMPLETE", "PRUNED"])]


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["state"] == "COMPLETE"]


@dataclass(frozen=True)
class Summary:
    states: pd.Series
    epochs_trained: int
    epochs_without_pruning: int
    wall: pd.Timedelta
    compute: pd.Timedelta


def summarize(frame: pd.DataFrame, default_max_epochs: int) -> Summary:
    done = finished(frame)
    # Every finished trial would have trained its max epochs without pruning.
    max_epochs = done["max_epochs"] if "max_epochs" in done else pd.Series(default_max_epochs, index=done.index)
    max_epochs = max_epochs.fillna(default_max_epochs)
    epochs = done["epochs"].fillna(0) if "epochs" in done else pd.Series(0, index=done.index)
    started = frame["datetime_start"].dropna()
    ended = frame["datetime_complete"].dropna()
    wall = (ended.max() - started.min()) if len(started) and len(ended) else pd.Timedelta(0)
    return Summary(states=frame["state"].value_counts(), epochs_trained=int(epochs.sum()),
                   epochs_without_pruning=int(max_epochs.sum()), wall=wall,
                   compute=frame["duration"].dropna().sum() if "duration" in frame else pd.Timedelta(0))


def pareto_mask(gain: pd.Series, cost: pd.Series) -> pd.Series:
    """True for the rows no other row beats on both: higher or equal gain at lower or equal cost, one strict."""
    g, c = gain.to_numpy(dtype=float), cost.to_numpy(dtype=float)
    dominated = ((g[None, :] >= g[:, None]) & (c[None, :] <= c[:, None])
                 & ((g[None, :] > g[:, None]) | (c[None, :] < c[:, None]))).any(axis=1)
    return pd.Series(~dominated, index=gain.index)


def _edges(values: pd.Series, base: float, steps_per_power: int) -> np.ndarray:
    low, high = math.log(values.min(), base), math.log(values.max(), base)
    first, last = math.floor(low * steps_per_power), math.ceil(high * steps_per_power)
    return base ** (np.arange(first, max(last, first + 1) + 1) / steps_per_power)


def levels(frame: pd.DataFrame, columns: list[str]) -> pd.Series | None:
    """The level of each trial for a question: categorical values as they are, crossed when there are several
    columns (constant ones left out); a numeric parameter with more distinct values than ranges it can fill
    (about FEW trials each) in ranges."""
    known = [c for c in columns if c in frame]
    # A trial that a parameter did not apply to (a GRU's nonlinearity: empty in trials_frame) has no level here.
    applied = frame[frame[known].notna().all(axis=1)]
    present = [c for c in known if applied[c].nunique() > 1]
    if not present:
        return None
    column = applied[present[0]]
    if len(present) == 1 and pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        bins = max(2, min(MAX_BINS, len(column) // FEW))
        if column.nunique() > bins:
            return _ranges(column.astype(float), bins).reindex(frame.index)
    text = {c: applied[c].map(lambda v, c=c: label(c, v)) for c in present}
    return pd.Series([" ".join(parts) for parts in zip(*text.values(), strict=True)],
                     index=applied.index).reindex(frame.index)


def _ranges(values: pd.Series, bins: int) -> pd.Series:
    """At most ``bins`` ranges: for positive values, between powers (of 2, 4, 16 for whole numbers; half
    decades, decades, two decades otherwise), the finest that fit, since sizes and rates are searched on log
    scales; otherwise equal widths."""
    known = values.dropna()
    integer = bool((known % 1 == 0).all())
    if known.min() > 0:
        for base, steps in ((2, 1), (4, 1), (16, 1)) if integer else ((10, 2), (10, 1), (100, 1)):
            edges = _edges(known, base, steps)
            if len(edges) - 1 <= bins:
                break
    else:
        edges = np.linspace(known.min(), known.max(), bins + 1)
        edges[-1] = np.nextafter(edges[-1], np.inf)  # ranges include their low end: the top one its high end too
    labels = [(f"{a:.0f}" if math.ceil(b) - 1 == a else f"{a:.0f}-{math.ceil(b) - 1:.0f}") if integer
              else f"{a:.2g}-{b:.2g}" for a, b in itertools.pairwise(edges)]
    return pd.cut(values, edges, labels=labels, right=False)


def label(column: str, value: object) -> str:
    if column == "bidirectional":
        return "bi" if value is True else "uni"
    return str(value)


def compare(frame: pd.DataFrame, columns: list[str], metric: str, maximize: bool,
            results: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """Per level: completed and pruned trials, best and median metric (completed trials), median epoch seconds,
    seconds per step and samples per second (completed and pruned: their cost is known either way), and the
    median of each of the task's ``results`` (completed trials)."""
    done = finished(frame)
    level = levels(done, columns)
    if level is None:
        return None
    results = tuple(name for name in results if name in done)
    # A result may be missing for some trials (never reached exact match): NaN, left out of the median.
    done = done.assign(**{name: pd.to_numeric(done[name], errors="coerce") for name in results})
    grouped = done.assign(level=level).groupby("level", observed=True)
    complete = done.assign(level=level)[done["state"] == "COMPLETE"].groupby("level", observed=True)
    table = pd.DataFrame({
        "completed": complete.size(),
        "pruned": grouped["state"].apply(lambda s: int((s == "PRUNED").sum())),
        f"best {metric}": complete["value"].max() if maximize else complete["value"].min(),
        f"median {metric}": complete["value"].median(),
        "median epoch s": grouped["epoch_seconds"].median(),
        **({"median ms/step": grouped["step_seconds"].median() * 1000} if "step_seconds" in done else {}),
        "median samples/s": grouped["samples_per_second"].median(),
        **{f"median {name}": complete[name].median() for name in results},
    })
    table["completed"] = table["completed"].fillna(0).astype(int)
    return table.sort_values(f"median {metric}", ascending=not maximize, na_position="last")


def answer(table: pd.DataFrame | None, values: pd.DataFrame, columns: list[str], metric: str,
           maximize: bool) -> str:
    """One sentence (or a few) answering a comparison question from its table, with how strong it is."""
    if table is None:
        return "Not searched: the study has one value here."
    ranked = table[table["completed"] > 0]
    if ranked.empty:
        return "No completed trials yet, so nothing to compare."
    median, best = f"median {metric}", f"best {metric}"
    top = ranked.index[0]
    text = (f"Best median {metric}: {top} ({ranked[median].iloc[0]:.3f} over "
            f"{_trials(ranked['completed'].iloc[0], 'completed ')}, best {ranked[best].iloc[0]:.3f})")
    if len(ranked) > 1:
        gap = abs(ranked[median].iloc[0] - ranked[median].iloc[1])
        spread = _within_level_spread(values, columns)
        text += f", then {ranked.index[1]} ({ranked[median].iloc[1]:.3f}, {_trials(ranked['completed'].iloc[1])}). "
        if spread is None or math.isnan(spread):
            text += "Too few completed trials per level to measure the spread: weak evidence."
        elif gap <= spread:
            text += (f"The gap ({gap:.3f}) is within the spread of trials inside a level (SD {spread:.3f}): "
                     "not conclusive.")
        else:
            text += f"The gap ({gap:.3f}) is larger than the spread inside a level (SD {spread:.3f})."
    else:
        text += "; no other level has a completed trial."
    timed = table["median epoch s"].dropna()
    if len(timed) > 1:
        text += (f" Fastest per epoch: {timed.idxmin()} ({timed.min():.2f}s median); "
                 f"slowest: {timed.idxmax()} ({timed.max():.2f}s).")
    few = [str(level) for level, n in table["completed"].items() if n < FEW]
    if few:
        text += f" Caution: fewer than {FEW} completed trials for {', '.join(few)}."
    return text


def _trials(n: int, kind: str = "") -> str:
    return f"{n} {kind}trial{'' if n == 1 else 's'}"


def _within_level_spread(values: pd.DataFrame, columns: list[str]) -> float | None:
    """Pooled standard deviation of the metric inside levels that have at least two completed trials."""
    done = completed(values)
    level = levels(done, columns)
    if level is None:
        return None
    variances = done["value"].groupby(level, observed=True).agg(["var", "size"]).dropna()
    variances = variances[variances["size"] >= 2]
    if variances.empty:
        return None
    return float(np.sqrt((variances["var"] * (variances["size"] - 1)).sum() / (variances["size"] - 1).sum()))


@dataclass(frozen=True)
class Importance:
    title: str
    values: pd.Series | None  # param -> importance, largest first
    note: str = ""


def importances(study: optuna.Study, target: Callable[[FrozenTrial], float] | None, target_name: str,
                ) -> list[Importance]:
    """Parameter importances with Optuna's default (PED-ANOVA) and with fANOVA, or why there are none."""
    results = []
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    for title, evaluator in ((f"PED-ANOVA (Optuna's default), {target_name}", PedAnovaImportanceEvaluator()),
                             (f"fANOVA, {target_name}", FanovaImportanceEvaluator(seed=0))):
        if n_complete < MIN_FOR_IMPORTANCE:
            # Optuna answers even for one trial, with equal shares that look like a finding.
            results.append(Importance(title, None, f"not computed from {_trials(n_complete, 'completed ')}: "
                                                   f"it needs at least {MIN_FOR_IMPORTANCE}"))
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-API and few-trials warnings
                values = get_param_importances(study, evaluator=evaluator, target=target)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            results.append(Importance(title, None, f"not computed from {_trials(n_complete, 'completed ')}: {exc}"))
            continue
        if not values:
            results.append(Importance(title, None, f"not computed: {n_complete} completed trials vary no parameter"))
            continue
        results.append(Importance(title, pd.Series(values).sort_values(ascending=False)))
    return results


@dataclass(frozen=True)
class Budgets:
    """How the best value grew with the search, and what more trials drawn like these would give."""

    order: pd.DataFrame  # finished trials in completion order: number, value, best (so far), compute_seconds
    pruned_included: bool  # pruned trials count with the best value they reported (a lower bound)
    trials: np.ndarray  # budgets n = 1 .. 2N
    expected: np.ndarray  # expected best of n trials drawn with replacement from the observed values
    spread: np.ndarray  # its standard deviation


def expected_best(values: np.ndarray, maximize: bool, budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dodge et al. 2019 ("Show your work"): the expected best, and its SD, of n draws with replacement from
    ``values``: with the values sorted worst first, the i-th is the best of n draws with probability
    (i/N)^n - ((i-1)/N)^n."""
    ranked = np.sort(values if maximize else -values)
    n_values = len(ranked)
    cumulative = np.arange(n_values + 1) / n_values
    weights = cumulative[1:, None] ** budgets - cumulative[:-1, None] ** budgets  # (values, budgets)
    mean = (weights * ranked[:, None]).sum(0)
    spread = np.sqrt((weights * (ranked[:, None] - mean) ** 2).sum(0))
    return (mean if maximize else -mean), spread


def budgets(study: optuna.Study, prune_on: str, metric: str) -> Budgets | None:
    """The best value against trials and compute; None before two trials have a value."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    # A pruned trial reported the study's own metric only when it is pruned on it; then its best report is
    # what it reached before it was stopped for falling behind.
    with_pruned = prune_on == metric
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                        key=lambda t: t.datetime_complete):
        if trial.state == TrialState.COMPLETE:
            value = trial.values[0]
        elif with_pruned and trial.intermediate_values:
            value = (max if maximize else min)(trial.intermediate_values.values())
        else:
            value = None
        rows.append({"number": trial.number, "value": value,
                     "seconds": (trial.datetime_complete - trial.datetime_start).total_seconds()})
    order = pd.DataFrame(rows, columns=["number", "value", "seconds"])
    if order["value"].count() < 2:
        return None
    order["best"] = (order["value"].cummax() if maximize else order["value"].cummin()).ffill()
    order["compute_seconds"] = order["seconds"].cumsum()
    values = order["value"].dropna().to_numpy(dtype=float)
    trials = np.arange(1, 2 * len(values) + 1)
    expected, spread = expected_best(values, maximize, trials)
    return Budgets(order, with_pruned, trials, expected, spread)


RESAMPLES = 2000  # of a paired bootstrap: 1.2 s for the 1,799 test names of surnames, 13 s for 25,000 reviews


def paired_intervals(ours: torch.Tensor, theirs: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> dict[str, tuple[float, float]]:
    """95% interval of each score (accuracy, balanced and blended accuracy) of the predictions ``ours`` minus
    that of ``theirs``, for the same rows: a percentile bootstrap that resamples the rows, both models scored on
    each resample, so what they share does not count as noise. Balanced accuracy needs it most: on a test split
    with 7-10 names in its smallest classes, one name moves it by about a point."""
    def difference(mine: np.ndarray, other: np.ndarray, truth: np.ndarray) -> np.ndarray:
        found = [scores(torch.from_numpy(p), torch.from_numpy(truth), num_classes) for p in (mine, other)]
        return np.array([found[0][name] - found[1][name] for name in SCORES])

    result = stats.bootstrap((ours.cpu().numpy(), theirs.cpu().numpy(), labels.cpu().numpy()), difference,
                             paired=True, vectorized=False, n_resamples=RESAMPLES, method="percentile",
                             random_state=0)
    bounds = zip(result.confidence_interval.low, result.confidence_interval.high, strict=True)
    return {name: (float(low), float(high)) for name, (low, high) in zip(SCORES, bounds, strict=True)}
