"""One MLflow experiment per study, one parent run per study, one child run per trial.

Every write names its run id through an ``MlflowClient``: no fluent "active run", so runs never cross
between trials or workers, and a trial's metrics go out in one batched call per epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy
import optuna
import pandas
import sqlalchemy
import sqlalchemy.exc
import torch
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

import hpsearch
from hpsearch.errors import HpsearchError
from hpsearch.urls import mask

MODEL_NAME = "best-model"
# The best model is served by hpsearch's own code, which travels with it (code_paths), through a loader
# module with no mlflow in it; what that code imports must be installed where it is served. Listing the
# requirements also saves MLflow's dependency inference, which takes seconds per logged model.
PACKAGE = Path(hpsearch.__file__).parent
SERVING = "hpsearch.training.serving"
MODEL_REQUIREMENTS = [f"torch=={torch.__version__.split('+')[0]}", f"optuna=={optuna.__version__}",
                      f"numpy=={numpy.__version__}", f"pandas=={pandas.__version__}"]
# How a trial ended -> its run's status. INTERRUPTED is not an Optuna state: Optuna records a trial stopped by
# Ctrl-C or SIGTERM as FAIL, but in MLflow a run someone stopped is KILLED.
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED", "INTERRUPTED": "KILLED"}
HEALTH_TIMEOUT_S = 5
# What MLflow logs while a store is opened: "Creating initial MLflow database tables...", and a warning
# before a Databricks URI's own error.
CONNECT_LOGGERS = ("mlflow.store.db.utils", "mlflow.utils.databricks_utils")
LOCKED_RETRIES = 6  # waits 0.1 s, doubling, about 6 s in all
# Without it, MLflow 3's UI may open an experiment on its GenAI overview (traces, "Detect Issues"); a model
# development experiment opens on its runs.
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development"}


class _PatientClient(MlflowClient):
    """An MlflowClient whose writes wait out a locked SQLite store.

    SQLite's busy timeout does not cover two connections that both read and then want to write: one gets
    "database is locked" at once, which MLflow reports as TEMPORARILY_UNAVAILABLE. Seen when one Ctrl-C stops
    two workers and both close their runs in the same instant. The write was rolled back, so it is tried again.
    """

    def _retry(self, write, *args, **kwargs):
        for attempt in range(LOCKED_RETRIES):
            try:
                return write(*args, **kwargs)
            except MlflowException as exc:
                if exc.error_code != "TEMPORARILY_UNAVAILABLE":
                    raise
            time.sleep(0.1 * 2 ** attempt)
        return write(*args, **kwargs)

    def create_run(self, *args, **kwargs):
        return self._retry(super().create_run, *args, **kwargs)

    def log_batch(self, *args, **kwargs):
        return self._retry(super().log_batch, *args, **kwargs)

    def set_terminated(self, *args, **kwargs):
        return self._retry(super().set_terminated, *args, **kwargs)

    def update_run(self, *args, **kwargs):
        return self._retry(super().update_run, *args, **kwargs)


def check_reachable(uri: str) -> None:
    """The tracking store must be usable now, before a study is created or changed for it.

    A server must answer its health check (MLflow's client would retry a dead one for minutes); a database
    store is opened (which creates it, once, before any worker starts) and read.
    """
    if not uri.startswith(("http://", "https://")):
        with _errors(uri), _quiet(*CONNECT_LOGGERS):
            _connect_once(uri)
            MlflowClient(uri).search_experiments(max_results=1)
            _rehome(uri)
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S):
            return
    except urllib.error.HTTPError:  # it answered (e.g. 401 from a server with authentication)
        return
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise HpsearchError(f"cannot reach the MLflow tracking server at {mask(uri)} "
                            f"({getattr(exc, 'reason', exc)}); start it, point --tracking-uri elsewhere, "
                            "or pass --no-mlflow") from None


def _connect_once(uri: str) -> None:
    """Connect to a database store once: MLflow retries an unreachable one for over a minute."""
    try:
        backend = sqlalchemy.engine.make_url(uri).get_backend_name()
    except sqlalchemy.exc.ArgumentError:
        return  # not a database URL (databricks, ...): MLflow says what is wrong with it
    if backend == "sqlite":
        return
    try:
        engine = sqlalchemy.create_engine(uri)
    except ImportError:
        raise HpsearchError(f"no database driver for {mask(uri).split('://')[0]} is installed for the MLflow "
                            "tracking store; for PostgreSQL install hpsearch[postgres]") from None
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


# Where artifacts go beside a work folder's SQLite store, and the columns in which MLflow keeps their absolute
# locations.
ARTIFACTS = "mlartifacts"
_LOCATIONS = (("experiments", "artifact_location"), ("runs", "artifact_uri"), ("logged_models", "artifact_location"),
              ("model_versions", "source"), ("model_versions", "storage_location"))


def _rehome(uri: str) -> None:
    """Point a moved or copied work folder's store at the work folder's own ``mlartifacts/``.

    MLflow keeps absolute artifact locations, and has no call to change them: a copy would write its new
    artifacts into the original folder, and read its models from there. Only a SQLite store whose experiments
    keep their artifacts in an ``mlartifacts/`` folder elsewhere is changed, where its file is now.
    """
    url = sqlalchemy.engine.make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    here = (Path(url.database).resolve().parent / ARTIFACTS).as_uri()
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as db:
            moved = {location for (location,) in db.execute(sqlalchemy.text("SELECT artifact_location FROM experiments"))
                     if location and location.endswith("/" + ARTIFACTS) and location != here}
            for old in moved:
                for table, column in _LOCATIONS:
                    db.execute(sqlalchemy.text(
                        f"UPDATE {table} SET {column} = :new || substr({column}, :cut) "
                        f"WHERE substr({column}, 1, :length) = :old "
                        f"AND (length({column}) = :length OR substr({column}, :cut, 1) = '/')"),
                        {"new": here, "old": old, "length": len(old), "cut": len(old) + 1})
    finally:
        engine.dispose()


def tracking_uri(explicit: str | None, workdir: Path) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else SQLite in the working folder.

    The SQLite default waits up to a minute for the write lock (sqlite3's ``timeout``): with several local
    workers closing runs at once, the 5-second default ran out on a loaded machine. A bare path would be
    MLflow's file store, which MLflow 3 refuses: say what it takes instead.
    """
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}?timeout=60"
    if "://" not in uri and uri not in ("databricks", "databricks-uc"):
        raise HpsearchError(f"tracking URI {uri!r} is not a URI; MLflow takes sqlite:///PATH/mlflow.db, "
                            "postgresql+psycopg://..., or http(s)://SERVER (--tracking-uri or MLFLOW_TRACKING_URI)")
    return uri


@contextlib.contextmanager
def _quiet(*logger_names: str):
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def _experiment_id(client: MlflowClient, study_name: str, tracking_uri: str, artifact_root: Path) -> str:
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None:
        # A server decides where artifacts go; a local store would otherwise put them under whatever folder
        # the first process happened to run in.
        remote = tracking_uri.startswith(("http://", "https://"))
        return client.create_experiment(study_name, tags=EXPERIMENT_TAGS,
                                        artifact_location=None if remote else artifact_root.as_uri())
    if experiment.tags.get(EXPERIMENT_KIND) != EXPERIMENT_TAGS[EXPERIMENT_KIND]:  # made by an earlier version
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND, EXPERIMENT_TAGS[EXPERIMENT_KIND])
    return experiment.experiment_id


def _connect(tracking_uri: str, study_name: str, artifact_root: Path) -> tuple[MlflowClient, str]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with _quiet(*CONNECT_LOGGERS):
        client = _PatientClient(tracking_uri)
        return client, _experiment_id(client, study_name, tracking_uri, artifact_root)


def _require_run(client: MlflowClient, run_id: str, tracking_uri: str) -> None:
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise HpsearchError(f"the study's MLflow parent run {run_id} is not in the tracking store "
                            f"{mask(tracking_uri)}: the study was tracked elsewhere; pass that --tracking-uri, "
                            "or --no-mlflow") from None


@contextlib.contextmanager
def _errors(tracking_uri: str):
    try:
        yield
    except (MlflowException, sqlalchemy.exc.SQLAlchemyError) as exc:
        reason = exc.message if isinstance(exc, MlflowException) else str(getattr(exc, "orig", None) or exc)
        raise HpsearchError(f"cannot use MLflow tracking at {mask(tracking_uri)}: "
                            f"{reason.strip().splitlines()[0]}; pass --tracking-uri or --no-mlflow") from None


class StudyTracking:
    """The experiment and parent run of one study, opened once per process before any trial starts."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_run_id: str) -> None:
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id

    @classmethod
    def open(cls, tracking_uri: str, study_name: str, *, artifact_root: Path, parent_run_id: str | None,
             params: Mapping[str, Any]) -> StudyTracking:
        """Create (or find) the experiment and the parent run; ``parent_run_id`` reopens an existing one.

        The first call on a new SQLite store migrates its schema, which takes seconds and must not race
        with other processes: callers open tracking once, before workers start.
        """
        with _errors(tracking_uri):
            client, experiment_id = _connect(tracking_uri, study_name, artifact_root)
            if parent_run_id is None:
                parent = client.create_run(experiment_id, run_name=study_name, tags={"optuna.study": study_name})
                parent_run_id = parent.info.run_id
                _log_params(client, parent_run_id, params)
            else:
                _require_run(client, parent_run_id, tracking_uri)
                client.update_run(parent_run_id, status="RUNNING")
        return cls(client, experiment_id, parent_run_id)

    @classmethod
    def experiment(cls, tracking_uri: str, study_name: str, *, artifact_root: Path) -> StudyTracking:
        """The study's experiment alone, for runs outside the search (retraining); the parent run is left as is."""
        with _errors(tracking_uri):
            client, experiment_id = _connect(tracking_uri, study_name, artifact_root)
        return cls(client, experiment_id, None)

    def start_run(self, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        _log_params(self.client, run.info.run_id, params)
        return run.info.run_id

    def start_trial(self, study_name: str, number: int, params: Mapping[str, Any]) -> str:
        tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id, "optuna.study": study_name, "optuna.trial": str(number)}
        return self.start_run(f"trial-{number}", tags, params)

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        now = _now_ms()
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, epoch) for k, v in metrics.items()])

    def finish_trial(self, run_id: str, state: str, metrics: Mapping[str, float], tags: Mapping[str, str],
                     step: int = 0) -> None:
        """Close a trial's run with the status that tells the truth about how the trial ended."""
        now = _now_ms()
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
                              tags=[RunTag("optuna.state", state), *(RunTag(k, str(v)) for k, v in tags.items())])
        self.client.set_terminated(run_id, status=STATUS[state])

    def log_best_model(self, checkpoint: bytes, summary: Mapping[str, Any]) -> None:
        """Log a trial's checkpoint as an MLflow logged model of the parent run, and name it there as the best.

        It is a pyfunc model that takes raw inputs (one query per DataFrame row: a surname, two numbers) and
        answers with the task's predictions, so `mlflow models serve` serves it as it is.
        """
        tags = {f"best.{k}": str(v) for k, v in summary.items()}
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "checkpoint.pt"
            data.write_bytes(checkpoint)
            mlflow.pyfunc.save_model(Path(tmp) / MODEL_NAME, loader_module=SERVING, data_path=str(data),
                                     code_paths=[str(PACKAGE)], pip_requirements=MODEL_REQUIREMENTS)
            model = self.client.create_logged_model(self.experiment_id, name=MODEL_NAME,
                                                    source_run_id=self.parent_run_id, tags=tags)
            self.client.log_model_artifacts(model.model_id, str(Path(tmp) / MODEL_NAME))
        self.client.finalize_logged_model(model.model_id, "READY")
        self.client.log_batch(self.parent_run_id, tags=[RunTag(k, v) for k, v in
                                                        {**tags, "best.model_id": model.model_id}.items()])

    def register_best(self, name: str) -> None:
        """Register the parent run's model under ``name``, once per best trial."""
        best = self.client.get_run(self.parent_run_id).data.tags.get("best.trial")
        if best is None:
            return
        versions = self.client.search_model_versions(f"name='{name}'")
        if any(v.run_id == self.parent_run_id and v.tags.get("best.trial") == best for v in versions):
            return
        if not versions:
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # else another worker registered it first
                    raise
        model = self.client.get_logged_model(self.client.get_run(self.parent_run_id).data.tags["best.model_id"])
        # The artifact location, not models:/ID: MLflow would resolve that URI in its default store, not this one.
        self.client.create_model_version(name, model.artifact_location, run_id=self.parent_run_id,
                                         model_id=model.model_id, tags={"best.trial": best})

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_run_id, status=status)


def study_experiments(tracking_uri: str) -> dict[str, str]:
    """Name -> id of the store's experiments that hold a study (hpsearch tags their runs ``optuna.study``)."""
    with _errors(tracking_uri):
        client = MlflowClient(tracking_uri)
        return {e.name: e.experiment_id for e in client.search_experiments()
                if client.search_runs([e.experiment_id], "tags.`optuna.study` != ''", max_results=1)}


def log_folder(tracking_uri: str, run_id: str, folder: Path, artifact_path: str) -> None:
    """Log a folder's files as artifacts of an existing run, whatever its status."""
    check_reachable(tracking_uri)
    with _errors(tracking_uri):
        MlflowClient(tracking_uri).log_artifacts(run_id, str(folder), artifact_path=artifact_path)
