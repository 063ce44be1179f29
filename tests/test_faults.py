"""Nothing lost, nothing stuck: a rerun right after kill -9, trials running on other hosts, checkpoints that
every host and every copy of a work folder can load."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import torch
from conftest import train_every_epoch, write_names
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from test_cli import hpsearch, stored

from hpsearch.search import liveness
from hpsearch.search.artifacts import Checkpoints
from hpsearch.search.lookup import load
from hpsearch.search.progress import Progress
from hpsearch.search.storage import HEARTBEAT_GRACE_S
from hpsearch.search.study import SearchOptions, run_search
from hpsearch.studies import record

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hpsearch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def test_the_same_command_right_after_kill_9_retries_the_dead_trial_and_meets_the_budget(tmp_path, spec_file,
                                                                                        monkeypatch):
    # Enough names that an epoch lasts long enough to be killed in, as on real data.
    monkeypatch.setenv("HPSEARCH_DATA", str(write_names(tmp_path / "data", per_language=1500)))
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
    train_every_epoch(spec_file)
    command = ["run", "--study", str(spec_file), "--n-trials", "10", "--epochs", "3"]
    first = start(*command)
    for line in first.stderr:
        if line.startswith("  trial 8 epoch 1/3"):
            break
    first.kill()
    first.wait(timeout=30)
    killed = stored(tmp_path / "runs").trials[8]
    assert killed.state == TrialState.RUNNING, "the kill came after trial 8 ended; the test needs slower epochs"
    assert HEARTBEAT_GRACE_S == 180  # the default grace period, far longer than this whole test

    again = start(*command)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0 and out.startswith("best trial of 'tiny'"), err
    assert (f"trial 8 was running in process {first.pid} on this host, which has ended: marked failed, "
            "queued again with the same params") in err
    assert "trial 9 (retry of trial 8): " in err and "Traceback" not in err
    trials = stored(tmp_path / "runs").trials
    assert len([t for t in trials if t.state in COUNTED]) == 10
    assert [t.number for t in trials if t.state not in COUNTED] == [8]
    assert trials[8].state == TrialState.FAIL and "its worker (process" in trials[8].user_attrs["fail_reason"]
    assert trials[9].params == killed.params and trials[9].user_attrs["retry_of"] == 8
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    dead_run = client.get_run(killed.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and "died" in dead_run.data.tags["fail_reason"]
    assert client.get_run(trials[9].user_attrs["mlflow_run_id"]).info.status in ("FINISHED", "KILLED")


def test_a_reused_pid_does_not_pass_for_the_dead_worker(tmp_path):
    me = liveness.Owner.this_process()
    reused = liveness.Owner(me.host, me.pid, me.started - 3600, me.boot)  # same pid, another process's start
    ended = liveness.Owner(me.host, 2**22 + 1, me.started, me.boot)  # above Linux's largest pid
    # Another machine of the same name, or this one before a reboot: left to the heartbeats.
    rebooted = liveness.Owner(me.host, me.pid, me.started, me.boot - 3600)
    elsewhere = liveness.Owner("host-b", 999_999_999, 0.0, 0.0)
    assert reused.gone() and ended.gone()
    assert not rebooted.gone() and not elsewhere.gone() and not me.gone()

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = {}
    for name, owner in {"alive": me, "reused": reused, "elsewhere": elsewhere}.items():
        trials[name] = study.ask()
        trials[name].set_user_attr(liveness.OWNER_ATTR, dataclasses.asdict(owner))
    failed = []
    liveness.fail_gone(study, lambda _, trial: failed.append(trial.number))
    assert failed == [trials["reused"].number]
    states = {name: study.trials[t.number].state for name, t in trials.items()}
    assert states == {"alive": TrialState.RUNNING, "reused": TrialState.FAIL, "elsewhere": TrialState.RUNNING}


def running_on_host_b(storage_url: str, spec_file: Path) -> tuple[optuna.Study, optuna.Trial]:
    """A trial that a worker on another host is running, with its heartbeat."""
    storage = optuna.storages.RDBStorage(storage_url)
    study = optuna.load_study(study_name="tiny", storage=storage)
    trial = study.ask()
    load(str(spec_file)).sample(trial)
    trial.set_user_attr(liveness.OWNER_ATTR, {"host": "host-b", "pid": 4242, "started": 1.0, "boot": 1.0})
    storage.record_heartbeat(trial._trial_id)
    return study, trial


def test_a_trial_running_on_another_host_is_shown_and_waited_for(env, spec_file):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet")
    url = f"sqlite:///{env / 'optuna.db'}"
    study, trial = running_on_host_b(url, spec_file)
    stop = threading.Event()

    def beat() -> None:  # host-b's worker is alive
        storage = optuna.storages.RDBStorage(url)
        while not stop.wait(1):
            storage.record_heartbeat(trial._trial_id)

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        waiting = start("run", "--study", str(spec_file), "--n-trials", "2")
        for line in waiting.stderr:
            if "trial 1 is running on host-b, last heartbeat" in line:
                break
        time.sleep(3)
        assert waiting.poll() is None  # the budget is not met yet: it waits instead of exiting
        study.tell(trial, 0.5)  # host-b's trial completes
        _, err = waiting.communicate(timeout=120)
    finally:
        stop.set()
        beating.join()
    assert waiting.returncode == 0, err
    trials = stored(env).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]  # nothing run twice
    # host-b's stand-in saved no model: the search still succeeds, and says why nothing new is served
    assert "the served model was not assembled: trial 1 recorded no checkpoint" in err


def test_a_trial_silent_on_another_host_is_retried_after_the_grace_period(env, spec_file, data_root, capsys):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet")
    _, trial = running_on_host_b(f"sqlite:///{env / 'optuna.db'}", spec_file)  # one heartbeat, then silence
    options = SearchOptions(storage_url=f"sqlite:///{env / 'optuna.db'}", workdir=env, data_dir=str(data_root),
                            n_trials=2, heartbeat_grace=3, mlflow=False)
    trials = run_search(load(str(spec_file)), options, Progress()).trials
    err = capsys.readouterr().err
    assert "trial 1 is running on host-b, last heartbeat" in err
    assert "trial 1 on host-b sent no heartbeat for too long: marked failed, queued again with the same params" in err
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, trials[2].state]
    assert trials[2].state in COUNTED and trials[2].params == trial.params and trials[2].user_attrs["retry_of"] == 1


def test_a_copied_work_folder_predicts_and_reports_unchanged(env, spec_file, tmp_path):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0, err
    _, before, _ = hpsearch("predict", "--study", str(spec_file), "Petrov", "McAdams")
    copy = tmp_path / "elsewhere" / "runs"
    shutil.copytree(env, copy)
    shutil.rmtree(env)
    code, after, err = hpsearch("predict", "--study", str(spec_file), "--workdir", str(copy), "Petrov", "McAdams")
    assert code == 0 and after == before, err
    code, _, err = hpsearch("report", "--study", str(spec_file), "--workdir", str(copy), "--no-mlflow")
    assert code == 0, err
    report = (copy / "reports" / "tiny" / "report.md").read_text()
    assert "Not computed" not in report and "recall (accuracy)" in report


def test_a_checkpoint_stored_before_the_artifact_store_is_found_in_a_moved_work_folder(tmp_path, spec_file, data_root):
    workdir = tmp_path / "moved"
    run_search(load(str(spec_file)), SearchOptions(storage_url=f"sqlite:///{workdir / 'optuna.db'}", workdir=workdir,
                                                   data_dir=str(data_root), n_trials=1, mlflow=False), Progress(True))
    [trial] = stored(workdir).trials
    checkpoints = Checkpoints(str(workdir / "artifacts"), workdir)
    model = checkpoints.load(trial).model
    # What a study of an earlier version holds: an absolute path on the disk where it ran, to a checkpoint that
    # kept the classifier's classes and vocabulary at its top level.
    saved = torch.load(workdir / "artifacts" / trial.user_attrs["checkpoint_artifact"], weights_only=True)
    (workdir / "checkpoints" / "tiny").mkdir(parents=True)
    torch.save({"task": "surnames", **saved.pop("meta"), "hyperparams": saved["hyperparams"],
                "state_dict": saved["state_dict"]}, workdir / "checkpoints" / "tiny" / "trial-0.pt")
    trial.user_attrs.pop("checkpoint_artifact")
    trial.user_attrs["checkpoint"] = "/gone/hpsearch-runs/checkpoints/tiny/trial-0.pt"
    legacy = checkpoints.load(trial)
    assert legacy.meta["classes"] == ["Alpha", "Beta", "Gamma"] and legacy.model.classes == ("Alpha", "Beta", "Gamma")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), legacy.model.state_dict().values(),
                                                 strict=True))


def test_two_hosts_with_a_shared_artifact_folder_predict_from_the_host_that_did_not_train(
        tmp_path, data_root, spec_file, postgres_url):
    shared = tmp_path / "shared-artifacts"

    def host(name: str, *extra: str) -> list[str]:
        return ["--study", str(spec_file), "--storage", postgres_url, "--artifacts", str(shared),
                "--workdir", str(tmp_path / name), *extra]

    common = ("--data-dir", str(data_root), "--no-mlflow", "--epochs", "3")
    assert start("run", *host("host-a", "--n-trials", "1", *common)).wait(timeout=300) == 0
    hosts = {name: start("run", *host(name, "--n-trials", "6", *common)) for name in ("host-a", "host-b")}
    for process in hosts.values():
        assert process.wait(timeout=600) == 0, process.stderr.read()
    best = optuna.load_study(study_name="tiny", storage=postgres_url).best_trial
    trained_on = next((name for name, p in hosts.items() if p.pid == best.user_attrs["worker"]["pid"]), "host-a")
    other = "host-b" if trained_on == "host-a" else "host-a"
    assert not list((tmp_path / other).rglob("*.pt"))  # nothing of the best trial's on the other host's disk
    predicted = start("predict", *host(other, "Petrov", "McAdams", "--json"))
    out, err = predicted.communicate(timeout=120)
    assert predicted.returncode == 0, err
    [row, _] = json.loads(out)  # the served model, uploaded by the host that assembled it last
    served = record.read_served(optuna.load_study(study_name="tiny", storage=postgres_url))
    assert row["model"] == served.description and row["predictions"][0]["language"] == "Alpha"

