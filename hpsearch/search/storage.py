"""Where studies are stored: the working folder, the Optuna storage URL, and opening it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import FrozenTrial
from sqlalchemy.engine import URL, make_url

from hpsearch.errors import StorageError
from hpsearch.folders import ensure_folder
from hpsearch.urls import mask

DEFAULT_WORKDIR = "hpsearch-runs"
SQLITE_BUSY_TIMEOUT_S = 60  # several local workers commit to one file; wait for the lock instead of failing
# A worker silent this long is taken for dead: its trial is failed (and retried) by the next trial to start.
# Heartbeats come from a background thread, so a long epoch does not silence them.
HEARTBEAT_GRACE_S = 180


@contextlib.contextmanager
def experimental_ok():
    """Heartbeats and their callbacks are experimental in Optuna; using them on purpose needs no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def workdir_path(workdir: str | os.PathLike | None) -> Path:
    return Path(workdir or os.environ.get("HPSEARCH_WORKDIR") or DEFAULT_WORKDIR).expanduser().resolve()


def storage_url(storage: str | None, workdir: Path) -> str:
    """``--storage``, else ``HPSEARCH_STORAGE``, else SQLite in the working folder (absolute path, so the
    URL printed for optuna-dashboard works from any directory)."""
    return storage or os.environ.get("HPSEARCH_STORAGE") or f"sqlite:///{workdir / 'optuna.db'}"


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError("the storage URL is not an SQLAlchemy URL; expected e.g. sqlite:///path/optuna.db "
                           "or postgresql+psycopg://user:password@host/db") from None


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL, None for other databases or in-memory SQLite."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _sqlite_engine_kwargs(path: Path) -> dict:
    def connect() -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module starts no transactions of its own; _begin_immediate does.
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False,
                                     isolation_level=None)
        # WAL lets readers (dashboard, report) work while a search writes; NORMAL syncs at checkpoints
        # instead of every commit, which cuts the per-trial storage cost about 4x and is still crash-safe.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return {"creator": connect}


def _begin_immediate(connection) -> None:
    """Start every transaction holding SQLite's write lock. Optuna hands out an enqueued trial with a read
    then a write (SELECT ... FOR UPDATE, which SQLite ignores), so two workers starting together both took
    the same waiting trial and trained it twice; with the lock taken up front the second waits, then sees the
    trial running. Readers on other connections (the dashboard, a report) are not blocked, thanks to WAL."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(url: str, *, create: bool = True, grace_period: int | None = None,
                 on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> optuna.storages.RDBStorage:
    """Open (and, when ``create``, create) an Optuna RDB storage, with one-line errors.

    With ``grace_period``, running trials send heartbeats and ``on_stale`` is called for each trial whose
    worker stopped sending them.
    """
    parsed = _parse(url)
    engine_kwargs = {}
    if parsed.get_backend_name() == "sqlite" and sqlite_file(url) is None:
        raise StorageError(f"--storage {mask(url)}: an in-memory database keeps nothing after the run; give a file, "
                           "e.g. sqlite:///path/optuna.db")
    if path := sqlite_file(url):
        if not create and not path.is_file():
            raise StorageError(f"no study storage at {path}; run `hpsearch run` first or pass --workdir/--storage")
        if create:
            ensure_folder(path.parent, "--storage")
        engine_kwargs = _sqlite_engine_kwargs(path)
    heartbeat = {} if grace_period is None else {
        "heartbeat_interval": max(1, grace_period // 6), "grace_period": grace_period,
        "heartbeat_stale_trial_callback": on_stale}
    try:
        with experimental_ok():
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
        if engine_kwargs and create:  # searching workers; readers (report, dashboard) take no write lock
            sqlalchemy.event.listen(storage.engine, "begin", _begin_immediate)
        return storage
    except ImportError:  # Optuna's own, raised when the URL's driver module is not installed
        raise StorageError(f"no database driver for {parsed.drivername} is installed; "
                           "for PostgreSQL install hpsearch[postgres]") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"cannot open storage {mask(url)}: {reason}") from None
