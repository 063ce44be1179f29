"""optuna-dashboard on a study storage, with the results attached as Optuna artifacts it can show."""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import optuna_dashboard
from optuna.artifacts import get_all_artifact_meta, upload_artifact

from hpsearch.search.storage import open_storage

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


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


def prepare(storage_url: str, workdir: Path, store: ArtifactStore, study_name: str | None) -> dict[str, int]:
    """Attach each study's report files (or the named study's); returns study name -> id, for the page URLs."""
    storage = open_storage(storage_url, create=False)
    names = [study_name] if study_name else [s.study_name for s in optuna.get_all_study_summaries(storage, False)]
    ids = {}
    for name in names:
        attach_results(optuna.load_study(study_name=name, storage=storage), store, workdir / "reports" / name)
        ids[name] = storage.get_study_id_from_name(name)
    return ids


def serve(storage_url: str, store: ArtifactStore, host: str, port: int) -> None:
    """Serve every study of the storage, with the trials' checkpoints and the reports' files; blocks until
    interrupted."""
    optuna_dashboard.run_server(open_storage(storage_url, create=False), host=host, port=port,
                                artifact_store=store)
