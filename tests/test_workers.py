"""Several workers on one study: on one host (--n-jobs, SQLite) and as separate hosts would run them
(PostgreSQL and a real `mlflow server`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from conftest import train_every_epoch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from servers import PG_PASSWORD

from hpsearch.errors import Terminated
from hpsearch.search.budget import Budget, OverBudget
from hpsearch.search.lookup import load
from hpsearch.search.study import open_study
from hpsearch.search.workers import handle_stop_signals

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def test_a_trial_started_after_the_budget_was_spoken_for_is_not_run():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0))
    budget = Budget(total=2)
    first, second = study.ask(), study.ask()  # two workers starting at once, one place left
    budget.admit(first)
    with pytest.raises(OverBudget):
        budget.admit(second)
    assert "filled the budget of 2 trials" in study.trials[second.number].user_attrs["fail_reason"]
    study.tell(second, state=TrialState.FAIL)  # as study.optimize does with the exception
    study.tell(first, state=TrialState.FAIL)  # its place is free again, for the next trial to start
    budget.admit(study.ask())


def worker(common: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hpsearch", "run", *common, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,  # a group of its own
                            env=os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


def test_workers_with_the_same_index_on_two_hosts_sample_apart(spec_file):
    # Two hosts start `--n-jobs 2` on a new study at once: each has a worker 0, and the study is still empty.
    spec, storage = load(str(spec_file)), optuna.storages.InMemoryStorage()
    studies = [open_study(spec, storage, worker=0) for _host in range(2)]
    first = [study.ask().suggest_float("x", 0.0, 1.0) for study in studies]
    assert first[0] != first[1]


# SIGTERM to the main process (kill PID), or to its whole process group as `timeout`, `kill -- -PGID` and
# process supervisors send it: then each worker gets it twice, directly and passed on by the main process.
@pytest.mark.parametrize("group", [False, True], ids=["process", "group"])
def test_sigterm_to_n_jobs_stops_every_worker_cleanly(tmp_path, data_root, spec_file, group):
    # No early end and no pruning, so both workers are surely inside a trial when the signal comes.
    train_every_epoch(spec_file)
    spec_file.write_text(spec_file.read_text().replace("n_warmup_steps = 1", "n_warmup_steps = 10000"))
    workdir = tmp_path / "runs"
    process = worker(["--study", str(spec_file), "--workdir", str(workdir), "--data-dir", str(data_root)],
                     "--n-trials", "4", "--n-jobs", "2", "--epochs", "1000")
    training, deadline = set(), time.monotonic() + 300
    for line in process.stderr:  # wait until both workers are deep in a trial
        if " epoch 3/1000" in line:
            training.add(line.split("]")[0])
        if len(training) == 2 or time.monotonic() > deadline:
            break
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.terminate()
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 130, rest
    # One message for both workers' stops, naming both trials.
    assert re.search(r"terminated: trials \d+, \d+ were marked failed; finished trials are kept", rest), rest
    assert rest.count("finished trials are kept") == 1, rest
    assert "Traceback" not in rest, rest
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'optuna.db'}")
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(stopped) == 2 and all(t.state != TrialState.RUNNING for t in study.trials)
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    for trial in stopped:
        assert trial.user_attrs["fail_reason"] == "interrupted by SIGTERM"
        assert client.get_run(trial.user_attrs["mlflow_run_id"]).info.status == "KILLED"


def test_a_sigterm_that_comes_again_while_stopping_changes_nothing():
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        handle_stop_signals()
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        # The stop's clean-up runs now, and the main process passes the SIGTERM on.
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(KeyboardInterrupt):  # while Ctrl-C pressed now is the user's insistence
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# A second SIGTERM sent at each line of the first one's handling in turn, the handler traced line by line; in a
# child process, as a handler that waits on a lock its own thread holds hangs for ever (the worker did, in
# threading.Event.set). Inside a transaction the handler asks again later instead: that path too.
_REENTRY = """
import os, signal, sys, time
from hpsearch.errors import Terminated
from hpsearch.search.workers import handle_stop_signals

def scenario(at, inside):
    handle_stop_signals()
    lines = 0
    def trace(frame, event, arg):
        nonlocal lines
        if event == "line" and lines >= 0:
            lines += 1
            if lines == at:
                os.kill(os.getpid(), signal.SIGTERM)
        return trace
    raised = 0
    try:
        sys.settrace(trace)
        inside(lambda: os.kill(os.getpid(), signal.SIGTERM))
        time.sleep(1)
    except Terminated:
        raised += 1
    finally:
        sys.settrace(None)
    return raised, lines

def plain(send):
    send()
    for _ in range(3):
        pass

atomic = {"__name__": "sqlite3.stand_in"}  # the handler sees a frame of this module: a transaction
exec("def transaction(send):\\n    send()\\n    for _ in range(3):\\n        pass", atomic)
for inside in (plain, atomic["transaction"]):
    at = 1
    while True:
        raised, lines = scenario(at, inside)
        assert raised == 1, (inside, at, raised)
        if lines < at:  # the stop was over before the at-th line: every line has had its turn
            break
        at += 1
    print(inside.__name__, at - 1)
"""


def test_a_second_sigterm_at_any_moment_of_the_first_ones_handling_neither_hangs_nor_raises_twice():
    done = subprocess.run([sys.executable, "-c", _REENTRY], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    turns = dict(line.split() for line in done.stdout.split("\n") if line)
    assert int(turns["plain"]) >= 5 and int(turns["transaction"]) >= 5, done.stdout


def check_one_child_run_per_trial(study: optuna.Study, client: MlflowClient) -> None:
    """Every trial that trained has its own run, under the study's one parent run; no trial ran twice."""
    parent = study.user_attrs["mlflow_parent_run_id"]
    experiment = client.get_experiment_by_name(study.study_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent]
    assert [r.info.run_id for r in runs if r not in children] == [parent]
    trained = [t for t in study.trials if "mlflow_run_id" in t.user_attrs]
    assert Counter(r.data.tags["optuna.trial"] for r in children) == Counter(str(t.number) for t in trained)
    assert {r.info.run_id for r in children} == {t.user_attrs["mlflow_run_id"] for t in trained}
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children)


def test_n_jobs_runs_worker_processes_on_one_study_to_the_exact_budget(tmp_path, data_root, spec_file):
    workdir = tmp_path / "runs"
    process = worker(["--study", str(spec_file), "--workdir", str(workdir), "--data-dir", str(data_root)],
                     "--n-trials", "6", "--n-jobs", "2")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'optuna.db'}")
    assert len(study.get_trials(states=COUNTED)) == 6
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    sampled = [json.dumps(t.params, sort_keys=True) for t in study.trials if t.params]
    assert len(set(sampled)) == len(sampled)  # the workers' samplers are seeded apart
    for index in (0, 1):  # both workers trained trials
        assert f"[worker {index}] trial " in err and f"[worker {index}]   trial " in err
    assert "best trial" in out
    check_one_child_run_per_trial(study, MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}"))


def test_two_hosts_share_one_study_on_postgresql_and_one_mlflow_server(tmp_path, data_root, spec_file,
                                                                     postgres_url, mlflow_server_url):
    def host(name: str, n_trials: int) -> list[str]:  # each "host" has its own working folder for checkpoints
        return ["--study", str(spec_file), "--storage", postgres_url, "--tracking-uri", mlflow_server_url,
                "--data-dir", str(data_root), "--workdir", str(tmp_path / name), "--n-trials", str(n_trials),
                "--epochs", "4"]

    # The first run creates the study and its MLflow parent run; then both hosts start together.
    first_out, first_err = worker(host("host-a", 1)).communicate(timeout=300)
    hosts = [worker(host("host-a", 7)), worker(host("host-b", 7))]
    outputs = [process.communicate(timeout=600) for process in hosts]
    assert [process.returncode for process in hosts] == [0, 0], outputs

    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    assert len(study.get_trials(states=COUNTED)) == 7
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    for _, err in outputs:  # both hosts trained trials
        assert " epoch 1/4" in err, err
    client = MlflowClient(mlflow_server_url)
    check_one_child_run_per_trial(study, client)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.params["storage"].startswith("postgresql+psycopg://hpsearch:***@127.0.0.1:")
    for text in (first_out, first_err, *(text for pair in outputs for text in pair), str(parent.data.params)):
        assert PG_PASSWORD not in text
