"""optuna-dashboard on a study storage, with the results attached as Optuna artifacts it can show."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import optuna_dashboard

from hpsearch.report.publish import attach_results
from hpsearch.search.storage import open_storage

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


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
