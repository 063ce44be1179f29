"""MLflow tracking against a real SQLite tracking store, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import mlflow
import optuna
import pandas as pd
import psutil
import pytest
import servers
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.errors import HpsearchError
from hpsearch.mlflow.ui import experiments_page
from hpsearch.search.artifacts import Checkpoints
from hpsearch.search.lookup import load
from hpsearch.search.progress import Progress
from hpsearch.search.study import SearchOptions, run_search
from hpsearch.studies import record
from hpsearch.training.surnames import classify
from hpsearch.urls import check_free

# Enqueued trials make every outcome deterministic: per-trial seeding fixes each one's training.
SPEC = """
task = "surnames"
serve_metric = { val_accuracy = 3, val_balanced_accuracy = 1 }
n_trials = 3
max_epochs = 4
[data]
split_seed = 1
[pruner]
type = "median"
n_startup_trials = 2
n_warmup_steps = 1
[space]
cell = { choices = ["gru", "rnn"] }
nonlinearity = { choices = ["relu"], when = { cell = "rnn" } }
bidirectional = { choices = [true, false] }
hidden_size = 16
embedding_dim = 8
optimizer = { choices = ["adam", "sgd"] }
lr = { choices = [0.02, 1e-7, 1e30] }
batch_size = 16
[[enqueue]]
cell = "rnn"
nonlinearity = "relu"
optimizer = "sgd"
lr = 1e30
[[enqueue]]
cell = "gru"
bidirectional = true
optimizer = "adam"
lr = 0.02
[[enqueue]]
cell = "gru"
bidirectional = false
optimizer = "adam"
lr = 0.02
[[enqueue]]
cell = "gru"
bidirectional = true
optimizer = "sgd"
lr = 1e-7
"""


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["run", "--quiet", *args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A study searched in two invocations (the second resumes it), with MLflow on."""
    root = tmp_path_factory.mktemp("mlflow")
    from conftest import write_names

    data = write_names(root / "data")
    spec = root / "tracked.toml"
    spec.write_text(SPEC, encoding="utf-8")
    workdir = root / "runs"
    common = ["--study", str(spec), "--workdir", str(workdir), "--data-dir", str(data)]
    run(*common, "--n-trials", "2")
    parent_before = optuna.load_study(study_name="tracked", storage=f"sqlite:///{workdir / 'optuna.db'}").user_attrs[
        "mlflow_parent_run_id"]
    run(*common, "--n-trials", "3", "--register-model", "surname-classifier")
    study = optuna.load_study(study_name="tracked", storage=f"sqlite:///{workdir / 'optuna.db'}")
    return workdir, study, parent_before


@pytest.fixture(scope="module")
def client(searched):
    return MlflowClient(f"sqlite:///{searched[0] / 'mlflow.db'}")


def runs_of(client: MlflowClient):
    experiment = client.get_experiment_by_name("tracked")
    return experiment, client.search_runs([experiment.experiment_id])


def test_one_experiment_one_parent_one_child_per_trial(searched, client):
    workdir, study, parent_before = searched
    experiment, runs = runs_of(client)
    assert experiment.artifact_location == (workdir / "mlartifacts").as_uri()
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    # The resumed invocation reopened the same parent and duplicated no run.
    assert [p.info.run_id for p in parents] == [parent_before] == [study.user_attrs["mlflow_parent_run_id"]]
    assert parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == sorted(f"trial-{t.number}" for t in study.trials)
    by_id = {r.info.run_id: r for r in children}
    for trial in study.trials:
        child = by_id[trial.user_attrs["mlflow_run_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parent_before
        assert child.data.tags["optuna.trial"] == str(trial.number) and child.data.tags["optuna.study"] == "tracked"
        assert child.data.params["lr"] == str(trial.params["lr"]) and "data_fingerprint" in child.data.params
        # A GRU has no nonlinearity: its run does not show the default it never used.
        assert ("nonlinearity" in child.data.params) == (trial.params["cell"] == "rnn")


def test_status_and_tags_tell_how_each_trial_ended(searched, client):
    _, study, _ = searched
    states = {t.state for t in study.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states
    for trial in study.trials:
        child = client.get_run(trial.user_attrs["mlflow_run_id"])
        expected = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}
        assert child.info.status == expected[trial.state]
        assert child.data.tags["optuna.state"] == trial.state.name
        if trial.state == TrialState.PRUNED:
            assert child.data.tags["pruned_at_epoch"] == str(trial.user_attrs["epochs"])
        if trial.state == TrialState.FAIL:
            assert child.data.tags["fail_reason"].startswith("TrainingDiverged: training loss became")
        if trial.state == TrialState.COMPLETE:
            assert child.data.metrics["test_accuracy"] == pytest.approx(record.read(trial).results["test_accuracy"])
            assert child.data.metrics["best_val_accuracy"] == pytest.approx(trial.value)


def test_one_metric_point_per_epoch_trained(searched, client):
    _, study, _ = searched
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        run_id = trial.user_attrs["mlflow_run_id"]
        for key in ("train_loss", "val_accuracy", "val_balanced_accuracy", "epoch_seconds", "lr"):
            history = client.get_metric_history(run_id, key)
            assert [m.step for m in history] == list(range(1, trial.user_attrs["epochs"] + 1))
        # Optuna holds the best value so far per epoch, MLflow each epoch's own: their maxima agree.
        accuracy = [m.value for m in client.get_metric_history(run_id, "val_accuracy")]
        assert max(accuracy) == pytest.approx(max(trial.intermediate_values.values()))


def test_best_model_is_a_logged_model_that_answers_raw_input_loaded_and_served(searched, client, monkeypatch):
    workdir, study, _ = searched
    # Not mlflow.set_tracking_uri: it also sets the environment variable, for every later test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    # The study's served model (its best trials and n-gram models), not only its best trial, is what MLflow serves.
    served = record.read_served(study)
    assert parent.data.tags["best.trial"] == ", ".join(f"#{n}" if isinstance(n, int) else n for n in served.members)
    assert parent.data.tags["best.model"] == served.description
    assert served.description.endswith("answering for 0.75 accuracy + 0.25 balanced accuracy")
    weighted = 0.75 * served.results["val_accuracy"] + 0.25 * served.results["val_balanced_accuracy"]
    assert float(parent.data.tags["best.value"]) == pytest.approx(weighted)
    [logged] = [m for m in client.search_logged_models([parent.info.experiment_id])
                if m.model_id == parent.data.tags["best.model_id"]]
    assert logged.source_run_id == parent.info.run_id and logged.name == "best-model"
    expected = [classify(checkpoints_model(workdir, study), [name])[0][0][0] for name in ("McÁllister", "Petrov")]

    model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
    assert model.predict(pd.DataFrame({"name": ["McÁllister", "Petrov"]})) == expected
    versions = client.search_model_versions("name='surname-classifier'")
    assert versions and versions[0].run_id == parent.info.run_id and versions[0].source == logged.artifact_location

    # Served by MLflow's own server, answering a POST as any client would send it.
    port = servers.free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{logged.model_id}",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert servers.answers(f"http://127.0.0.1:{port}/ping", server, 120) is not None, "mlflow models serve"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", headers={"Content-Type": "application/json"},
            data=json.dumps({"dataframe_split": {"columns": ["name"], "data": [["McÁllister"], ["Petrov"]]}}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.load(response) == {"predictions": expected}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def checkpoints_model(workdir, study):
    """The study's served model as `hpsearch predict` loads it, from the study's artifact store."""
    return Checkpoints(str(workdir / "artifacts"), workdir, create=False).served(study).model


def test_no_mlflow_writes_no_tracking_store(tmp_path, data_root, spec_file):
    run("--study", str(spec_file), "--workdir", str(tmp_path / "w"), "--data-dir", str(data_root), "--n-trials", "1",
        "--no-mlflow")
    assert (tmp_path / "w" / "optuna.db").exists() and not (tmp_path / "w" / "mlflow.db").exists()


def test_ui_serves_the_store_opens_on_runs_and_leaves_nothing_behind_when_stopped(searched):
    port = servers.free_port()
    log = searched[0].parent / "ui.log"
    with log.open("w") as said:
        ui = subprocess.Popen([sys.executable, "-m", "hpsearch", "ui", "--workdir", str(searched[0]), "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=said)
    try:
        body = servers.answers(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tracked",
                               ui)
        assert body, "mlflow ui did not start"
        experiment = json.loads(body)["experiment"]
        # A model development experiment, and the link the command printed opens it on its runs, not on the
        # GenAI overview.
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
        link = f"http://127.0.0.1:{port}/{experiments_page(experiment['experiment_id'])}"
        assert f"  study 'tracked': {link}" in log.read_text().splitlines()
        seen = servers.rendered(link)
        assert "matching runs" in seen and "Detect Issues" not in seen and ">tracked<" in seen
        children = psutil.Process(ui.pid).children(recursive=True)
        assert children  # mlflow ui and its uvicorn
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=30) == 0
    finally:
        if ui.poll() is None:
            ui.kill()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    check_free("127.0.0.1", port)  # nothing listens there (closed connections may linger in TIME_WAIT)


def test_unexpected_errors_fail_their_trials_and_a_streak_stops_the_run(tmp_path, data_root, spec_file,
                                                                         monkeypatch):
    def broken_epoch(*args, **kwargs):
        raise RuntimeError("device lost")

    monkeypatch.setattr("hpsearch.training.classification.SequenceClassification.train_epoch", broken_epoch)
    workdir = tmp_path / "runs"
    options = SearchOptions(storage_url=f"sqlite:///{workdir / 'optuna.db'}", workdir=workdir,
                            data_dir=str(data_root), n_trials=10)
    with pytest.raises(HpsearchError, match="stopped after 3 trials in a row failed with 'RuntimeError: device lost'"):
        run_search(load(str(spec_file)), options, Progress(quiet=True))
    study = optuna.load_study(study_name="tiny", storage=options.storage_url)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    for trial in study.trials:
        failed = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert failed.info.status == "FAILED" and failed.data.tags["fail_reason"] == "RuntimeError: device lost"
    assert client.get_run(study.user_attrs["mlflow_parent_run_id"]).info.status == "FAILED"


def test_a_moved_work_folder_reads_and_writes_only_inside_itself(tmp_path, data_root, spec_file, monkeypatch):
    first = tmp_path / "first" / "runs"
    run("--study", str(spec_file), "--workdir", str(first), "--data-dir", str(data_root), "--n-trials", "1")
    moved = tmp_path / "moved" / "runs"
    shutil.copytree(first, moved)
    shutil.rmtree(tmp_path / "first")  # nothing may reach for it again

    result = CliRunner().invoke(main, ["report", "--study", str(spec_file), "--workdir", str(moved),
                                       "--data-dir", str(data_root)])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "first").exists()
    client = MlflowClient(f"sqlite:///{moved / 'mlflow.db'}")
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{moved / 'optuna.db'}")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
    assert (moved / "mlartifacts" / parent.info.run_id / "artifacts" / "report" / "index.html").is_file()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{moved / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{parent.data.tags['best.model_id']}")
    assert len(model.predict(pd.DataFrame({"name": ["McAllister"]}))) == 1
