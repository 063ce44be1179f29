"""The report's figures: optuna.visualization where it has the plot (plotly for the page, its matplotlib
twin for the PNG), matplotlib by hand for what it lacks."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import matplotlib
import optuna
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState
from plotly.subplots import make_subplots

from hpsearch.report.analysis import Budgets, Importance

FAINT, STRONG, PRUNED = "#c8c8c8", "#1f5fa8", "#b0b0b0"
# optuna-dashboard shows these figures in cards of a fixed height: a shorter figure leaves blank space.
CARD_HEIGHT = 450


def canvas(width: float, height: float, columns: int = 1):
    """A figure outside pyplot (no display, no global state to close) and its row of axes."""
    fig = MplFigure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, columns, squeeze=False).flat


@dataclass
class Figure:
    name: str  # file stem of the PNG
    title: str
    png: MplFigure
    interactive: Any = None  # a plotly figure for the HTML page, when optuna draws one


def _optuna(name: str, title: str, plot: str, study: optuna.Study, **kwargs: Any) -> Figure:
    """An optuna.visualization plot, in both of its versions."""
    # rc_context: optuna's matplotlib plots switch the global style to ggplot, which would leak into ours.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # the matplotlib versions are marked experimental
        interactive = getattr(optuna.visualization, plot)(study, **kwargs)
        axes = getattr(optuna.visualization.matplotlib, plot)(study, **kwargs)
    png = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    png.set_size_inches(9, 5)
    png.set_layout_engine("constrained")
    return Figure(name, title, png, interactive)


def history(study: optuna.Study, target_name: str) -> Figure:
    return _optuna("history", "Optimization history", "plot_optimization_history", study, target_name=target_name)


def timeline(study: optuna.Study) -> Figure:
    return _optuna("timeline", "Timeline of trials", "plot_timeline", study)


def pareto_front_multi(study: optuna.Study, target_names: list[str]) -> Figure:
    return _optuna("pareto_objectives", "Pareto front of the study's objectives (Optuna)", "plot_pareto_front", study,
                   target_names=target_names)


def learning_curves(study: optuna.Study, metric: str) -> Figure:
    """Each trial's reported value per epoch: completed trials in colour, pruned ones grey and dashed."""
    fig, (ax,) = canvas(9, 5)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.PRUNED, TrialState.COMPLETE)):
        if not trial.intermediate_values:
            continue
        steps, values = zip(*sorted(trial.intermediate_values.items()), strict=True)
        if trial.state == TrialState.PRUNED:
            ax.plot(steps, values, color=PRUNED, linestyle="--", linewidth=0.8, zorder=1)
        else:
            ax.plot(steps, values, linewidth=1.6, zorder=2, label=f"#{trial.number}")
    ax.plot([], [], color=PRUNED, linestyle="--", label="pruned")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.set(xlabel="epoch", ylabel=f"{metric} (best so far)", title="Learning curves")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    return Figure("learning_curves", "Learning curves (completed in colour, pruned grey)", fig)


def importance_bars(name: str, title: str, results: list[Importance]) -> Figure | None:
    shown = [r for r in results if r.values is not None]
    if not shown:
        return None
    fig, axes = canvas(5 * len(shown), 0.35 * max(len(r.values) for r in shown) + 1.5, len(shown))
    for ax, result in zip(axes, shown, strict=True):
        values = result.values.iloc[::-1]
        ax.barh(values.index, values.to_numpy(), color=STRONG)
        ax.set(title=result.title, xlabel="importance (sums to 1)")
        ax.title.set_fontsize(9)
    return Figure(name, title, fig)


def pareto(done: pd.DataFrame, fronts: dict[str, pd.Series], metric: str) -> Figure:
    """Metric against each cost; the front in strong colour and joined, dominated trials faint."""
    fig, axes = canvas(6 * len(fronts), 4.5, len(fronts))
    for ax, (cost, mask) in zip(axes, fronts.items(), strict=True):
        ax.scatter(done.loc[~mask, cost], done.loc[~mask, "value"], color=FAINT, s=18, label="dominated")
        front = done[mask].sort_values(cost)
        ax.step(front[cost], front["value"], where="post", color=STRONG, linewidth=1)
        ax.scatter(front[cost], front["value"], color=STRONG, s=30, zorder=3, label="Pareto front")
        for _, row in front.iterrows():
            ax.annotate(f"#{row['number']}", (row[cost], row["value"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set(xlabel=cost, ylabel=metric, xscale="log" if cost == "n_params" else "linear")
        ax.legend(fontsize=8)
    page = make_subplots(1, len(fronts))
    for column, (cost, mask) in enumerate(fronts.items(), start=1):
        front = done[mask].sort_values(cost)
        for rows, name, style in ((done[~mask], "dominated", {"color": FAINT}),
                                  (front, "Pareto front", {"color": STRONG, "size": 9})):
            page.add_trace(go.Scatter(x=rows[cost], y=rows["value"], mode="markers", name=name, marker=style,
                                      text=[f"trial {n}" for n in rows["number"]], showlegend=column == 1),
                           row=1, col=column)
        page.update_xaxes(title_text=cost, type="log" if cost == "n_params" else "linear", row=1, col=column)
    page.update_yaxes(title_text=metric, row=1, col=1)
    title = f"{metric} against cost: the Pareto front"
    page.update_layout(title=title, height=CARD_HEIGHT)
    return Figure("pareto", title, fig, page)


def comparison(key: str, title: str, done: pd.DataFrame, level: pd.Series, order: list[str], metric: str) -> Figure:
    """Left: the metric of every completed trial per level. Right: median seconds per epoch per level."""
    fig, (left, right) = canvas(11, 0.4 * len(order) + 2, 2)
    frame = done.assign(level=level.astype(str))
    for y, name in enumerate(order):
        rows = frame[frame["level"] == name]
        kept = rows[rows["state"] == "COMPLETE"]
        left.scatter(kept["value"], [y] * len(kept), color=STRONG, s=20, zorder=2)
        if len(kept):
            left.plot([kept["value"].median()] * 2, [y - 0.3, y + 0.3], color="black", linewidth=2)
        right.barh(y, rows["epoch_seconds"].median() if len(rows) else 0, color=STRONG)
    for ax in (left, right):
        ax.set_yticks(range(len(order)), order)
        ax.invert_yaxis()
    left.set(xlabel=f"{metric} (completed trials; bar = median)", title=title)
    right.set(xlabel="median seconds per epoch (completed and pruned)")
    right.tick_params(labelleft=False)
    page = make_subplots(1, 2, shared_yaxes=True, subplot_titles=(metric, "median seconds per epoch"))
    kept = frame[frame["state"] == "COMPLETE"]
    page.add_trace(go.Box(x=kept["value"], y=kept["level"], orientation="h", boxpoints="all", name=metric,
                          marker_color=STRONG, text=[f"trial {n}" for n in kept["number"]]), row=1, col=1)
    seconds = frame.groupby("level")["epoch_seconds"].median().reindex(order)
    page.add_trace(go.Bar(x=seconds.to_numpy(), y=order, orientation="h", name="epoch s", marker_color=STRONG),
                   row=1, col=2)
    page.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    page.update_layout(title=title, showlegend=False, height=max(CARD_HEIGHT, 120 + 30 * len(order)))
    return Figure(f"compare_{key}", title, fig, page)


def confusion(matrix: pd.DataFrame) -> Figure:
    """Rows normalised to the true class, so small classes are as readable as large ones."""
    share = matrix.div(matrix.sum(axis=1).replace(0, 1), axis=0)
    size = max(0.45 * len(matrix) + 2, 3.5)  # two classes still leave room for the title
    fig, (ax,) = canvas(size + 1, size)
    image = ax.imshow(share.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(matrix.index)), matrix.index, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion on the test split\n(share of each true class)")
    for (i, j), count in pd.DataFrame(matrix.to_numpy()).stack().items():
        if count:
            ax.text(j, i, int(count), ha="center", va="center", fontsize=6,
                    color="white" if share.iat[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.04)
    return Figure("confusion", "Confusion matrix of the best model (test split)", fig)


def budgets(found: Budgets, metric: str) -> Figure:
    """The best value so far against trials, with the expected best of n trials, and against compute."""
    valued = found.order.dropna(subset=["value"])
    seen = range(1, len(valued) + 1)
    # Mean ± SD, clipped to what was observed: the best of any number of draws lies within it.
    observed = valued["value"]
    low = (found.expected - found.spread).clip(observed.min(), observed.max())
    high = (found.expected + found.spread).clip(observed.min(), observed.max())
    minutes = found.order["compute_seconds"] / 60
    fig, (by_trials, by_compute) = canvas(12, 4.5, 2)
    by_trials.fill_between(found.trials, low, high, color=STRONG, alpha=0.15, linewidth=0, label="expected ± SD")
    by_trials.plot(found.trials, found.expected, color=STRONG, label="expected best of n trials")
    by_trials.step(seen, valued["best"], where="post", color="black", linewidth=1, label="best so far")
    by_trials.axvline(len(valued), color=FAINT, linestyle=":")
    by_trials.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_trials.set(xlabel="trials", ylabel=metric)
    by_trials.legend(fontsize=8, loc="lower right")
    by_compute.step(minutes, found.order["best"], where="post", color="black", linewidth=1)
    # One scale for both panels: on its own, the right one would blow a gain of 0.001 up to its full height.
    by_compute.set(xlabel="compute minutes (trial time, summed)", ylabel=metric, ylim=by_trials.get_ylim())
    page = make_subplots(1, 2, shared_yaxes=True, subplot_titles=("against trials", "against compute"))
    page.add_trace(go.Scatter(x=[*found.trials, *found.trials[::-1]], y=[*high, *low[::-1]], fill="toself",
                              line={"width": 0}, fillcolor="rgba(31,95,168,0.15)", name="expected ± SD"), row=1, col=1)
    page.add_trace(go.Scatter(x=found.trials, y=found.expected, name="expected best of n trials",
                              line={"color": STRONG}), row=1, col=1)
    page.add_trace(go.Scatter(x=list(seen), y=valued["best"], name="best so far", line={"color": "black", "shape": "hv"},
                              text=[f"trial {n}" for n in valued["number"]]), row=1, col=1)
    page.add_trace(go.Scatter(x=minutes, y=found.order["best"], showlegend=False,
                              line={"color": "black", "shape": "hv"}), row=1, col=2)
    page.update_xaxes(title_text="trials", row=1, col=1)
    page.update_xaxes(title_text="compute minutes (trial time, summed)", row=1, col=2)
    page.update_yaxes(title_text=metric, row=1, col=1)
    title = f"Best {metric} against trials and compute"
    page.update_layout(title=title, height=CARD_HEIGHT)
    return Figure("budget", title, fig, page)
