"""Where a report shows up besides its folder: the optuna-dashboard note and figures of the study, and the
artifacts of the study's MLflow parent run."""

from __future__ import annotations

from pathlib import Path

import optuna
import optuna_dashboard

from hpsearch.mlflow import log_folder
from hpsearch.report.build import Section, walk

DASHBOARD_FIGURES = ("pareto", "compare_")  # the figures worth a place on the study's dashboard page


def to_dashboard(study: optuna.Study, sections: list[Section], folder: Path) -> int:
    """Attach the summary as the study's note and the Pareto and comparison figures; returns the figures added.

    Fixed ids mean a new report replaces the old figures instead of piling up beside them.
    """
    summary = sections[0]
    optuna_dashboard.save_note(study, "\n\n".join([f"## {summary.title}", *summary.text,
                                                   f"Full report: `{folder / 'index.html'}`"]))
    added = 0
    for section, _ in walk(sections):
        for figure in section.figures:
            if figure.interactive is not None and figure.name.startswith(DASHBOARD_FIGURES):
                optuna_dashboard.save_plotly_graph_object(study, figure.interactive,
                                                          graph_object_id=f"hpsearch-{figure.name}")
                added += 1
    return added


def to_mlflow(study: optuna.Study, tracking_uri: str, folder: Path) -> str | None:
    """Log the report folder under ``report/`` on the study's parent run; None when the study has no run."""
    run_id = study.user_attrs.get("mlflow_parent_run_id")
    if run_id is None:
        return None
    log_folder(tracking_uri, run_id, folder, "report")
    return run_id

