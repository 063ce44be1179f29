"""Serve the MLflow UI on a study's tracking store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

STOP_GRACE_S = 10  # after this long, what is left of the server is killed
# MLflow 3.17's UI shows an experiment as its GenAI overview (traces, "Detect Issues") or as model training
# (runs) after a switch kept in the browser, GenAI for a new one; the experiment's kind tag does not override
# it. This query parameter does, so the links hpsearch prints open on the runs.
MODEL_TRAINING = "workflowType=machine_learning"


def experiments_page(experiment_id: str | None = None) -> str:
    """The UI route (after host and port) of the experiments, or of one experiment, in its model-training view."""
    return f"#/experiments/{experiment_id}?{MODEL_TRAINING}" if experiment_id else f"#/experiments?{MODEL_TRAINING}"


def ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    # One worker: uvicorn's default four add ~44 ms per request on Linux for a UI nobody shares.
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host,
            "--port", str(port), "--workers", "1"]


def serve(tracking_uri: str, host: str, port: int) -> int:
    """Run the UI in the foreground until Ctrl-C or SIGTERM; returns its exit code (0 when stopped so).

    `mlflow ui` starts uvicorn and, unless told not to, a job runner with its consumers: a signal to this
    process alone would leave them serving the port. The server gets a process group of its own, every stop
    signal is passed to the whole group, and nothing of it outlives this function.
    """
    # Jobs are MLflow's background GenAI evaluations; hpsearch starts none, and they cost processes and memory.
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(ui_command(tracking_uri, host, port), env=env, start_new_session=True)
    stopped = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopped
        stopped = True
        _signal_group(server.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _signal_group(server.pid, signal.SIGTERM)  # whatever the server left behind
        try:
            server.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(server.pid, signal.SIGKILL)
            server.wait()
    return 0 if stopped else code


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:  # the group has no process left
        pass
