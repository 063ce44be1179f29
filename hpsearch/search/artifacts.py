"""Optuna's artifact store: where trials keep their checkpoints and studies their report files.

A checkpoint is uploaded as an artifact of its trial and found again by artifact id, never by a path on the
disk of the worker that trained it: a work folder copied elsewhere, or a host that did not train the best
trial, loads it the same way. The store is the work folder's ``artifacts/`` (which optuna-dashboard also
serves) unless ``--artifacts`` / ``HPSEARCH_ARTIFACTS`` names a folder every host mounts, or an S3 bucket
(``s3://bucket``; boto3's own credentials, and ``AWS_ENDPOINT_URL`` for an S3-compatible server).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from hpsearch.errors import HpsearchError, StorageError
from hpsearch.folders import ensure_folder
from hpsearch.studies import record
from hpsearch.training import checkpoint

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


def location(explicit: str | None, workdir: Path) -> str:
    """``--artifacts``, else ``HPSEARCH_ARTIFACTS``, else the work folder's ``artifacts/``."""
    return explicit or os.environ.get("HPSEARCH_ARTIFACTS") or str(workdir / "artifacts")


def open_store(where: str, create: bool = True) -> ArtifactStore:
    """The store ``where`` names; ``create`` False for readers, which must leave no empty folder behind."""
    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        if not bucket or prefix.strip("/"):
            raise StorageError(f"--artifacts {where}: give an S3 bucket alone, as s3://BUCKET (Optuna's S3 store "
                               "keeps artifacts at the bucket's top level)")
        try:
            return optuna.artifacts.Boto3ArtifactStore(bucket)
        except ImportError:
            raise StorageError("--artifacts s3://...: boto3 is not installed; pip install 'hpsearch[s3]'") from None
    if "://" in where:
        raise StorageError(f"--artifacts {where}: not a folder or an s3://BUCKET; give a folder every host can "
                           "reach, or an S3 bucket")
    folder = Path(where).expanduser()
    return FileSystemArtifactStore(str((ensure_folder(folder, "--artifacts") if create else folder).resolve()))


class Checkpoints:
    """The checkpoints of a study's trials, in one artifact store."""

    def __init__(self, where: str, workdir: Path, create: bool = True) -> None:
        self.where, self.workdir = where, workdir
        self.store = open_store(where, create)

    def save(self, trial: optuna.Trial, content: bytes) -> dict[str, str]:
        """Upload a trial's checkpoint; returns the record field that finds it again."""
        return {"checkpoint_artifact": self._upload(trial, content, f"trial-{trial.number}.pt")}

    def save_served(self, study: optuna.Study, content: bytes) -> str:
        """Upload the model a study serves, as an artifact of the study; returns its artifact id."""
        return self._upload(study, content, "served-model.pt")

    def load(self, trial: optuna.trial.FrozenTrial) -> checkpoint.Trained:
        """The model a completed trial saved, in eval mode, with its task."""
        if artifact_id := record.read(trial).checkpoint_artifact:
            return self._read(artifact_id, f"trial {trial.number}'s checkpoint")
        return checkpoint.load(self._legacy_path(trial))

    def served(self, study: optuna.Study) -> checkpoint.Trained | None:
        """The model the study serves (training/assembly.py), or None where it has none."""
        found = record.read_served(study)
        return None if found is None else self._read(found.artifact, f"the served model of study '{study.study_name}'")

    def _upload(self, owner: optuna.Trial | optuna.Study, content: bytes, file_name: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / file_name  # the file name optuna-dashboard shows
            path.write_bytes(content)
            return upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=owner,
                                   mimetype="application/octet-stream")

    def _read(self, artifact_id: str, what: str) -> checkpoint.Trained:
        try:
            with self.store.open_reader(artifact_id) as reader:
                return checkpoint.load(reader.read())
        except ArtifactNotFound:
            raise HpsearchError(f"{what} (artifact {artifact_id}) is not in the artifact store {self.where}; pass "
                                "--artifacts (or HPSEARCH_ARTIFACTS) naming the store the search wrote to") from None

    def _legacy_path(self, trial: optuna.trial.FrozenTrial) -> Path:
        """A checkpoint of a study stored before the artifact store: at its absolute path, or, for a work
        folder that was moved or copied, at the same place under this work folder."""
        if not record.read(trial).checkpoint:
            raise HpsearchError(f"trial {trial.number} recorded no checkpoint: its worker saved none where this host "
                                "can see it")
        recorded = Path(record.read(trial).checkpoint)
        moved = self.workdir / "checkpoints" / recorded.parent.name / recorded.name
        for path in (recorded, moved):
            if path.name and path.is_file():
                return path
        raise HpsearchError(f"trial {trial.number} has no checkpoint here (it was saved as {recorded}, and "
                            f"{moved} does not exist); pass the --workdir the search ran in")
