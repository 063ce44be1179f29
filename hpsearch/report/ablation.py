"""What an ablation found: per factor and level, mean and spread over seeds, and 95% intervals of the paired
differences, which tell a real lead from seed-to-seed noise.

Repeat r of every level trained with the same seed (studies/ablation.py), so a level is compared with
another seed by seed: the differences cancel what the seed alone does to both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import MaxNLocator
from scipy import stats

from hpsearch.report import figures
from hpsearch.report.analysis import label
from hpsearch.report.build import Section
from hpsearch.studies import record
from hpsearch.studies.ablation import ABLATION_ATTR, Design

COSTS = ("epoch_seconds", "samples_per_second")
PLAN = ("factor", "level", "repeat", "trial", "state", "diverged")  # a row's columns besides what it recorded


def frame(study: optuna.Study, design: Design) -> pd.DataFrame:
    """One row per trial the ablation planned: factor (None for the base), level, repeat, state, why it
    failed, and what it recorded: its scores, and the loss too where it is the objective or the ranking."""
    losses = {design.rank_by, study.user_attrs.get("metric")}
    rows = []
    for trial in study.get_trials(deepcopy=False):
        stored = record.read(trial)
        if stored.ablation is None:
            continue
        rows.append({**stored.ablation, "trial": trial.number, "state": trial.state.name,
                     "diverged": stored.diverged,
                     **{k: v for k, v in stored.results.items() if k in losses}, **stored.scores(),
                     **{cost: getattr(stored, cost) for cost in COSTS}})
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=PLAN)


@dataclass
class Factor:
    name: str
    rank_by: str
    summary: pd.DataFrame  # level -> "mean ± sd" per metric
    against_base: pd.DataFrame  # level -> "difference [95% interval]" per metric
    sentence: str
    figure: figures.Figure | None

    def text(self) -> str:
        """The sentence and the ranking metric's columns, for a terminal; the report has every metric."""
        columns = [c for c in ("seeds", "diverged", "failed", self.rank_by, "epoch_seconds") if c in self.summary]
        table = self.summary[columns]
        if self.rank_by in self.against_base:
            table = table.join(self.against_base[[self.rank_by]].rename(
                columns={self.rank_by: f"{self.rank_by} - base [95% interval]"}))
        return f"{self.name}: {self.sentence}\n{table.fillna('').to_string()}"


def _read(study: optuna.Study) -> tuple[Design, pd.DataFrame]:
    design = Design.from_attr(study.user_attrs[ABLATION_ATTR])
    return design, frame(study, design)


def analyse(study: optuna.Study) -> list[Factor]:
    """Every factor of the study's stored design, in the order it was given."""
    return _factors(*_read(study))


def _factors(design: Design, trials: pd.DataFrame) -> list[Factor]:
    return [_factor(design, trials, name, levels) for name, levels in design.factors.items()]


def _of_level(design: Design, trials: pd.DataFrame, name: str, level: object) -> pd.Series:
    """Which trials trained ``level`` of factor ``name``: at the base value, the base's own trials."""
    if level == design.base[name] and type(level) is type(design.base[name]):
        return trials["factor"].isna()
    return (trials["factor"] == name) & trials["level"].map(lambda v: v == level and type(v) is type(level))


def _values(trials: pd.DataFrame, mine: pd.Series) -> pd.DataFrame:
    """The completed trials of one level (``mine``), indexed by repeat."""
    done = trials[mine & (trials["state"] == "COMPLETE")]
    return done.drop_duplicates("repeat").set_index("repeat")


def _metrics(design: Design, trials: pd.DataFrame) -> list[str]:
    """The ranking metric first, then the task's other metrics and results, then the costs."""
    named = [c for c in trials.columns if c not in (*PLAN, *COSTS)]
    first = [design.rank_by] if design.rank_by in named else []
    return [*first, *[m for m in named if m != design.rank_by], *COSTS]


def _interval(differences: pd.Series) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% t interval (NaN bounds with fewer than two pairs)."""
    d = differences.dropna().astype(float)
    if len(d) < 2:
        return (float(d.mean()) if len(d) else math.nan), math.nan, math.nan
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def _factor(design: Design, trials: pd.DataFrame, name: str, levels: tuple) -> Factor:
    base = design.base[name]
    metrics = [m for m in _metrics(design, trials) if m in trials]
    per_level, summary, against = {}, {}, {}
    for level in levels:
        shown = _level_label(name, level, base)
        mine = _of_level(design, trials, name, level)
        per_level[shown] = values = _values(trials, mine)
        summary[shown] = {"seeds": len(values), **_incomplete(trials, mine), **{m: _mean_sd(values, m) for m in metrics}}
    base_values = per_level[_level_label(name, base, base)]
    for shown, values in per_level.items():
        if values is not base_values:
            against[shown] = {m: _difference(values, base_values, m) for m in metrics}
    table = pd.DataFrame(summary).T.rename_axis(name)
    for count in ("diverged", "failed"):
        if count in table:
            table[count] = table[count].fillna(0).astype(int)
    return Factor(name, design.rank_by, table,
                  pd.DataFrame(against).T.rename_axis(name), _sentence(design, _rank(design, per_level)),
                  _figure(design, name, per_level))


def _incomplete(trials: pd.DataFrame, mine: pd.Series) -> dict[str, int]:
    """Trials of the level (``mine``) that did not complete: diverged (a result) or failed (to be run again)."""
    failed = trials[mine & (trials["state"] == "FAIL")]
    diverged = failed["diverged"].astype(bool)
    # A failed trial queued again and completed since is not missing any more.
    done = set(trials[mine & (trials["state"] == "COMPLETE")]["repeat"])
    failed_now = failed[~diverged & ~failed["repeat"].isin(done)]["repeat"].nunique()
    return {k: v for k, v in (("diverged", int(diverged.sum())), ("failed", int(failed_now))) if v}


def _level_label(name: str, value: object, base: object) -> str:
    return label(name, value) + (" (base)" if value == base and type(value) is type(base) else "")


def _mean_sd(values: pd.DataFrame, metric: str) -> str:
    column = pd.to_numeric(values.get(metric, pd.Series(dtype=float)), errors="coerce").dropna()
    if column.empty:
        return "-"
    if len(column) == 1:
        return f"{column.iloc[0]:.4g}"
    sd = column.std(ddof=1)
    places = _places(sd)
    return f"{column.mean():.{places}f} ± {sd:.{places}f}"


def _difference(values: pd.DataFrame, base: pd.DataFrame, metric: str) -> str:
    if values.empty or base.empty or metric not in values or metric not in base:
        return "-"
    mean, low, high = _interval(pd.to_numeric(values[metric], errors="coerce")
                                - pd.to_numeric(base[metric], errors="coerce"))
    if math.isnan(mean):
        return "-"
    if math.isnan(low):
        return f"{mean:+.4g}"
    places = _places((high - low) / 2)
    return f"{mean:+.{places}f} [{low:+.{places}f}, {high:+.{places}f}]"


def _places(spread: float) -> int:
    """Decimals that show two significant digits of ``spread``: more would be noise."""
    if not spread or not math.isfinite(spread):
        return 4
    return min(6, max(0, 1 - math.floor(math.log10(abs(spread)))))


def _rank(design: Design, per_level: dict[str, pd.DataFrame]) -> list[tuple[str, pd.Series]]:
    """Levels with a value of the ranking metric, best mean first."""
    scored = [(shown, pd.to_numeric(values[design.rank_by], errors="coerce"))
              for shown, values in per_level.items() if design.rank_by in values]
    scored = [(shown, s) for shown, s in scored if s.notna().any()]
    return sorted(scored, key=lambda item: item[1].mean(), reverse=design.maximize)


def _sentence(design: Design, ranked: list[tuple[str, pd.Series]]) -> str:
    metric = design.rank_by
    if not ranked:
        return f"no level has a completed trial with {metric} yet."
    (best, top), *rest = ranked
    text = f"{best} is best on {metric} ({_spread(top)})"
    if not rest:
        return text + "; no other level has a completed trial."
    runner, second = rest[0]
    mean, low, high = _interval(top - second)
    if math.isnan(low):
        return text + f", ahead of {runner} ({_spread(second)}). One seed in common: run more --repeats to " \
                      "measure the seed-to-seed spread."
    places = _places((high - low) / 2)
    text += f", ahead of {runner} ({_spread(second)}) by {abs(mean):.{places}f}"
    if (low > 0) if mean > 0 else (high < 0):
        verdict = "excludes 0: the lead is beyond the seed-to-seed spread"
    else:
        verdict = "includes 0: the lead is within the seed-to-seed spread, not conclusive"
    return text + f"; the 95% interval of the paired difference, [{low:+.{places}f}, {high:+.{places}f}] over " \
                  f"{len((top - second).dropna())} seeds, {verdict}."


def _spread(values: pd.Series) -> str:
    known = values.dropna()
    if len(known) < 2:
        return f"{known.mean():.4g}, one seed"
    places = _places(known.std(ddof=1))
    return f"{known.mean():.{places}f} ± {known.std(ddof=1):.{places}f} over {len(known)} seeds"


def _figure(design: Design, name: str, per_level: dict[str, pd.DataFrame]) -> figures.Figure | None:
    """The ranking metric and the epoch time per level: each seed a faint line across the levels (the pairs),
    the mean and standard deviation on top."""
    if not any(len(v) for v in per_level.values()):
        return None
    png, axes = figures.canvas(9, 4, columns=2)
    labels = list(per_level)
    for ax, metric in zip(axes, (design.rank_by, "epoch_seconds"), strict=True):
        table = pd.DataFrame({shown: pd.to_numeric(v[metric], errors="coerce") if metric in v
                              else pd.Series(dtype=float) for shown, v in per_level.items()})
        x = np.arange(len(labels))
        for _, seed in table.iterrows():
            ax.plot(x, seed.to_numpy(dtype=float), color=figures.FAINT, marker=".", linewidth=1)
        ax.errorbar(x, table.mean().to_numpy(dtype=float), yerr=table.std(ddof=1).fillna(0).to_numpy(dtype=float),
                    color=figures.STRONG, marker="o", linestyle="none", capsize=4)
        ax.set_xticks(x, labels, rotation=30 if max(map(len, labels)) > 6 else 0, ha="right" if
                      max(map(len, labels)) > 6 else "center")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by {name}")
        if metric == "epoch_seconds":
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
    return figures.Figure(f"ablation_{name}", f"Ablation: {name}", png)


def section(study: optuna.Study) -> Section:
    """The report's section for one ablation study of the parent."""
    design, trials = _read(study)
    done = int((trials["state"] == "COMPLETE").sum())
    part = Section(f"Controlled comparisons: ablation '{study.study_name}'")
    part.text.append(f"Trial #{design.base_trial}'s configuration, varied one factor at a time with everything else "
                     f"fixed; every level trained {design.max_epochs} epochs without pruning, with the same "
                     f"{design.repeats} seeds, so levels are compared seed by seed. {done} trials completed. "
                     f"Levels are ranked by {design.rank_by}; a lead counts when the 95% interval of the paired "
                     "differences excludes 0.")
    for factor in _factors(design, trials):
        sub = Section(f"Ablation: {factor.name}")
        sub.text.append(f"{factor.name}: {factor.sentence}")
        sub.tables.append((f"{factor.name}: mean ± sd over seeds", factor.summary))
        if not factor.against_base.empty:
            sub.tables.append((f"{factor.name}: difference from the base level, seed by seed [95% interval]",
                               factor.against_base))
        if factor.figure:
            sub.figures.append(factor.figure)
        part.subsections.append(sub)
    return part
