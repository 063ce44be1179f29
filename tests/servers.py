"""Real servers for tests: a throwaway PostgreSQL cluster and an `mlflow server`, both on 127.0.0.1; and
headless Chromium, to see a page as a user does."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_USER, PG_PASSWORD = "hpsearch", "pg-s3cret-word"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str, server: subprocess.Popen, timeout: float = 60) -> bytes | None:
    """The body of ``url`` once the server process answers it; None if the process ends or time runs out."""
    deadline = time.monotonic() + timeout
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            time.sleep(0.5)
    return None


def rendered(url: str, width: int = 1400, height: int = 900) -> str:
    """The page's DOM once headless Chromium has run its scripts (Debian's chromium; .ci/run installs it)."""
    done = subprocess.run([shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           f"--window-size={width},{height}", "--virtual-time-budget=20000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql` package (.ci/run does)")
    return Path(found[-1]).parent


@contextmanager
def postgres() -> Iterator[str]:
    """A new cluster with password authentication; yields the SQLAlchemy URL of its `postgres` database."""
    bindir = _postgres_bin()
    # Not under pytest's tmp folder: PostgreSQL refuses to run as root, and its user must reach the folder.
    base = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    (base / "password").write_text(PG_PASSWORD)
    if as_postgres:
        shutil.chown(base / "password", "postgres")
    port = free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, cwd=base)

    try:
        pg(str(bindir / "initdb"), "-D", str(base / "data"), "-U", PG_USER, f"--pwfile={base / 'password'}",
           "--auth=scram-sha-256", "-E", "UTF8")
        pg(str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w", "-o",
           f"-h 127.0.0.1 -p {port} -k {base}", "start")
        try:
            yield f"postgresql+psycopg://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    import psycopg

    dsn = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real `mlflow server` with its own SQLite store and artifact folder; yields its URL."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts")]
    log = open(folder / "server.log", "w")  # noqa: SIM115 - closed below, after the server stops
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        if not answers(f"{url}/health", server, 120):
            pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
