"""Making a report and showing it where its readers look: its folder, the study's optuna-dashboard note,
figures and artifacts, and the artifacts of the study's MLflow parent run."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import optuna
import optuna_dashboard
from optuna.artifacts import get_all_artifact_meta, upload_artifact

from hpsearch.folders import ensure_folder
from hpsearch.mlflow import log_folder
from hpsearch.report import ablation, build, write
from hpsearch.report.build import Section, walk
from hpsearch.studies import StudySpec
from hpsearch.training.checkpoint import ModelSource

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

DASHBOARD_FIGURES = ("pareto", "compare_")  # the figures worth a place on the study's dashboard page


class Checkpoints(ModelSource, Protocol):
    """The study's artifact store, which holds the trials' checkpoints and takes the report's files."""

    store: ArtifactStore


def _digest(stream) -> str:
    return hashlib.sha256(stream.read()).hexdigest()


def attach_results(study: optuna.Study, store: ArtifactStore, folder: Path) -> int:
    """Attach the report's figures and Markdown to the study, skipping files attached before with the same
    name and bytes; returns how many were added. (Each trial's checkpoint is already an artifact of its trial.)"""
    files = sorted(folder.glob("*.png")) + sorted(folder.glob("*.md"))
    existing: dict[str, set[str]] = {}
    for meta in get_all_artifact_meta(study):
        with store.open_reader(meta.artifact_id) as reader:
            existing.setdefault(meta.filename, set()).add(_digest(reader))
    added = 0
    for path in files:
        with path.open("rb") as handle:
            if _digest(handle) in existing.get(path.name, set()):
                continue
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study,
                        mimetype=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        added += 1
    return added


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


@dataclass(frozen=True)
class Published:
    files: list[Path]
    dashboard_figures: int
    new_artifacts: int
    mlflow_run_id: str | None  # None: not logged (no parent run, or MLflow off)


def make_report(study: optuna.Study, spec: StudySpec, folder: Path, *, checkpoints: Checkpoints,
                data_dir: str | None, tracking_uri: str | None, ablations: Sequence[optuna.Study] = (),
                judge: optuna.Study | None = None) -> Published:
    """Write the report into ``folder`` and publish it; ``tracking_uri`` None leaves MLflow alone. Each of
    ``ablations`` (studies of `hpsearch ablate` on this one) adds a section; ``judge`` reads generated text."""
    ensure_folder(folder, "--out")
    sections = build.build(study, spec, data_dir, checkpoints, [ablation.section(a) for a in ablations], judge)
    files = write.write(sections, f"Study '{spec.name}': {spec.description or spec.task}", folder)
    figures = to_dashboard(study, sections, folder)
    artifacts = attach_results(study, checkpoints.store, folder)
    run_id = to_mlflow(study, tracking_uri, folder) if tracking_uri else None
    return Published(files, figures, artifacts, run_id)
