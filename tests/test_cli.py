from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_SPEC, train_every_epoch, write_names
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpsearch.cli import main
from hpsearch.search.resources import check_workers, cores
from hpsearch.studies import record


def hpsearch(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def stored(workdir: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'optuna.db'}")


def refused(folder: Path, task: str, lines: str) -> str:
    """The one line `hpsearch run` answers a spec of ``task`` with (``lines`` after it; a fixed cell when they
    have no [space]), asserting exit code 2."""
    path = folder / "bad.toml"
    path.write_text(f'task = "{task}"\n{lines}\n' + ("" if "[space]" in lines else '[space]\ncell = "gru"\n'),
                    encoding="utf-8")
    code, _, err = hpsearch("run", "--study", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_run_to_completion_then_resume_runs_only_the_difference(env, spec_file):
    code, out, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "3")
    assert code == 0, err
    assert "starting study 'tiny'" in err and "trial 2 " in err and "epoch 2/2" in err
    assert out.startswith("best trial of 'tiny': #")
    first = stored(env).trials
    assert len(first) == 3 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in first)

    code, out, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "5")
    assert code == 0, err
    assert "resuming study 'tiny'" in err and "3/5 trials done, running up to 2" in err
    trials = stored(env).trials
    assert len(trials) == 5
    assert [(t.params, t.values) for t in trials[:3]] == [(t.params, t.values) for t in first]

    code, out, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "5")
    assert code == 0 and "nothing to run" in err and len(stored(env).trials) == 5


def test_resumed_seeded_sampler_does_not_replay_earlier_trials(env, tmp_path):
    spec = tmp_path / "random.toml"
    spec.write_text(TINY_SPEC.format(epochs=1).replace("n_startup_trials = 2\n\n[pruner]",
                                                       'type = "random"\n\n[pruner]'))
    hpsearch("run", "--study", str(spec), "--n-trials", "2", "--quiet")
    hpsearch("run", "--study", str(spec), "--n-trials", "4", "--quiet")
    params = [t.params for t in stored(env, "random").trials]
    # Without the seed offset, the second process's random sampler would draw trial 0's params again.
    assert params[2] != params[0] and params[3] != params[1]


def test_completed_trial_keeps_checkpoint_and_metrics(env, spec_file):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--quiet")
    complete = stored(env).get_trials(states=(TrialState.COMPLETE,))
    assert complete
    for trial in complete:
        kept = record.read(trial)
        assert 0 <= kept.results["test_accuracy"] <= 1 and 0 <= kept.results["test_balanced_accuracy"] <= 1
        assert kept.results["val_accuracy"] == trial.value and 1 <= kept.best_epoch <= kept.epochs <= 2
        assert kept.epochs == 2 or trial.value == 1.0  # a perfect validation score ends a trial early
        assert kept.n_params > 0 and kept.epoch_seconds > 0 and kept.samples_per_second > 0 and kept.step_seconds > 0
        # Stored in the work folder's artifact store by id, not as a path on the worker's disk.
        [meta] = optuna.artifacts.get_all_artifact_meta(trial, storage=stored(env)._storage)
        assert meta.artifact_id == kept.checkpoint_artifact and meta.filename == f"trial-{trial.number}.pt"
        saved = torch.load(env / "artifacts" / meta.artifact_id, weights_only=True)
        assert saved["task"] == "surnames" and saved["meta"]["classes"] == ["Alpha", "Beta", "Gamma"]
        assert saved["hyperparams"] == kept.hyperparams


def test_best_prints_the_best_trial_as_text_and_json(env, spec_file):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "3", "--quiet")
    best = stored(env).best_trial
    code, out, _ = hpsearch("best", "--study", str(spec_file), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["trial"] == best.number and summary["value"] == best.value
    assert summary["params"] == best.params and summary["test_accuracy"] == record.read(best).results["test_accuracy"]
    assert {"val_balanced_accuracy", "test_balanced_accuracy", "epochs", "best_epoch"} <= summary.keys()
    baseline = summary["baseline"]
    assert baseline["description"].startswith("class-weighted character 1-4-gram TF-IDF + logistic regression")
    assert set(baseline["results"]) == {f"{split}_{score}" for split in ("val", "test")
                                        for score in ("accuracy", "balanced_accuracy", "blended_accuracy")}
    code, out, _ = hpsearch("best", "--study", "tiny")
    assert code == 0 and f"best trial of 'tiny': #{best.number}" in out and "test_balanced_accuracy" in out
    ahead = summary["test_accuracy"] - baseline["results"]["test_accuracy"]
    line = next(line for line in out.splitlines()[out.splitlines().index(next(
        line for line in out.splitlines() if line.startswith("baseline: "))):] if "test_accuracy" in line)
    assert line.split() == ["test_accuracy", f"{baseline['results']['test_accuracy']:.4f}", "best", "trial",
                            f"{ahead:+.4f}"]


def test_the_baseline_is_fitted_once_per_study_on_its_train_split(env, spec_file):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "1")
    assert code == 0 and err.count("baseline, class-weighted character 1-4-gram") == 1, err
    baseline = stored(env).user_attrs["baseline"]["results"]
    # Each made-up language marks its names with a prefix or suffix: the start and end marks find them.
    assert baseline["test_accuracy"] > 0.9 and baseline["val_balanced_accuracy"] > 0.9, baseline
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2")
    assert code == 0 and "baseline, " not in err


def test_studies_lists_builtins_and_stored_counts(env, spec_file):
    code, out, _ = hpsearch("studies")
    assert code == 0 and "surnames" in out and "no study storage" in out
    hpsearch("run", "--study", str(spec_file), "--n-trials", "3", "--quiet")
    code, out, _ = hpsearch("studies")
    row = next(line.split() for line in out.splitlines() if line.startswith("tiny"))
    trials = stored(env).trials
    assert row[3] == "3"
    assert int(row[5]) + int(row[6]) == 3 == sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


@pytest.fixture(scope="module")
def one_trial_study(tmp_path_factory) -> Path:
    """A working folder holding a study with one finished trial, made once and copied by each test."""
    base = tmp_path_factory.mktemp("stored")
    (base / "tiny.toml").write_text(TINY_SPEC.format(epochs=1))
    code, _, err = hpsearch("run", "--study", str(base / "tiny.toml"), "--n-trials", "1", "--no-mlflow",
                            "--workdir", str(base / "runs"), "--data-dir", str(write_names(base / "data")))
    assert code == 0, err
    return base / "runs"


def bad_files(folder: Path) -> None:
    """The broken inputs the table below points at, all in ``folder``."""
    (folder / "empty" / "names").mkdir(parents=True)
    (folder / "broken.toml").write_text('name = "tiny"\ntask = "surnames\n')
    (folder / "inverted.toml").write_text(TINY_SPEC.format(epochs=1).replace(
        "hidden_size = { low = 8, high = 16, log = true }", "hidden_size = { low = 16, high = 8 }"))
    (folder / "latin1" / "names").mkdir(parents=True)
    (folder / "latin1" / "names" / "German.txt").write_bytes("Müller\n".encode("latin-1"))
    (folder / "cjk" / "names").mkdir(parents=True)
    (folder / "cjk" / "names" / "Polish.txt").write_text("Nowak\n")
    (folder / "cjk" / "names" / "Chinese.txt").write_text("李\n王\n")
    (folder / "dropout.toml").write_text(TINY_SPEC.format(epochs=1) + "dropout = { low = 0.0, high = 1.5 }\n")
    (folder / "escape.toml").write_text('name = "x/../y"\n' + TINY_SPEC.format(epochs=1))
    (folder / "my study.toml").write_text(TINY_SPEC.format(epochs=1))
    (folder / "resplit.toml").write_text('name = "tiny"\n' + TINY_SPEC.format(epochs=1).replace("split_seed = 1",
                                                                                                 "split_seed = 2"))
    (folder / "folder" / "names" / "Polish.txt").mkdir(parents=True)
    (folder / "folder" / "names" / "Czech.txt").write_text("Novak\n")
    write_names(folder / "few", per_language=2)
    write_names(folder / "other", seed=7)


@pytest.mark.parametrize("args, message", [
    (["run", "--study", "nosuch"], "unknown study 'nosuch'; built-in studies: addition, addition-100, imdb,"),
    (["run", "--study", "broken.toml"], "broken.toml: not valid TOML: Illegal character '\\n' (at line 2"),
    (["run", "--study", "inverted.toml"], "inverted.toml: space.hidden_size: low (16) is greater than high (8)"),
    (["run", "--study", "tiny.toml", "--storage", "not a url"], "the storage URL is not an SQLAlchemy URL"),
    (["run", "--study", "tiny.toml", "--storage", "postgresql+psycopg://u:hunter2@127.0.0.1:1/db"],
     "cannot open storage postgresql+psycopg://u:***@127.0.0.1:1/db"),
    (["run", "--study", "tiny.toml", "--storage", "mysql+pymysql://u:hunter2@127.0.0.1:1/db"],
     "no database driver for mysql+pymysql is installed"),
    (["run", "--study", "tiny.toml", "--tracking-uri", "http://u:hunter2@127.0.0.1:1"],
     "cannot reach the MLflow tracking server at http://u:***@127.0.0.1:1"),
    (["run", "--study", "tiny.toml", "--data-dir", "empty"], "no surname files found: put the <Language>.txt"),
    (["run", "--study", "tiny.toml", "--data-dir", "latin1"], "German.txt: not UTF-8 text"),
    (["run", "--study", "tiny.toml", "--data-dir", "cjk"], "Chinese.txt: no name in it has a letter of the alphabet"),
    (["best", "--study", "tiny.toml", "--workdir", "elsewhere"], "no study storage at"),
    (["run", "--study", "tiny.toml", "--n-trials", "0"], "Invalid value for '--n-trials'"),
    (["run", "--study", "tiny.toml", "--n-trials", "-3"], "Invalid value for '--n-trials'"),
    (["run", "--study", "tiny.toml", "--n-jobs", "0"], "Invalid value for '--n-jobs'"),
    (["run", "--study", "dropout.toml"], "dropout.toml: space.dropout: 1.5 is not a possible dropout (must be >= 0"),
    (["run", "--study", "escape.toml"], "escape.toml: name must be letters, digits and -_.: starting with"),
    (["run", "--study", "my study.toml"], "my study.toml: name: 'my study', from the file name, must be letters"),
    (["run", "--study", "resplit.toml", "--n-trials", "5"],
     "study 'tiny' cannot resume: it was created with split_seed 1 (spec: 2); restore them in"),
    (["run", "--study", "tiny.toml", "--n-trials", "5", "--data-dir", "other"],
     "study 'tiny' cannot resume: the data found now is not the data its trials trained on"),
    (["run", "--study", "tiny.toml", "--data-dir", "folder"], "Polish.txt: cannot be read (Is a directory)"),
    (["run", "--study", "tiny.toml", "--data-dir", "few"], "6 names are too few for a val and test split"),
    (["run", "--study", "tiny.toml", "--storage", "sqlite://"], "an in-memory database keeps nothing"),
    (["run", "--study", "tiny.toml", "--storage", "sqlite:////proc/hpsearch/optuna.db"],
     "--storage /proc/hpsearch: cannot create this folder"),
    (["run", "--study", "tiny.toml", "--workdir", "/proc/hpsearch"], "--workdir /proc/hpsearch: cannot create"),
    (["run", "--study", "tiny.toml", "--n-trials", "5", "--tracking-uri", "not a uri"],
     "tracking URI 'not a uri' is not a URI; MLflow takes sqlite:///"),
    (["run", "--study", "tiny.toml", "--n-trials", "5", "--tracking-uri",
      "postgresql+psycopg://u:hunter2@127.0.0.1:1/mlflow"],
     "cannot use MLflow tracking at postgresql+psycopg://u:***@127.0.0.1:1/mlflow: connection failed"),
    (["run", "--study", "tiny.toml", "--n-trials", "5", "--tracking-uri", "ftp://127.0.0.1/x"],
     "cannot use MLflow tracking at ftp://127.0.0.1/x"),
    (["run", "--study", "tiny.toml", "--artifacts", "gs://bucket"], "--artifacts gs://bucket: not a folder or"),
    (["run", "--study", "tiny.toml", "--artifacts", "s3://bucket/runs"], "give an S3 bucket alone, as s3://BUCKET"),
    (["run", "--study", "tiny.toml", "--n-jobs", "1000"], "--n-jobs 1000: 1000 workers need about"),
    (["report", "--study", "tiny.toml", "--out", "/proc/hpsearch", "--no-mlflow"], "--out /proc/hpsearch: cannot"),
    (["predict", "--study", "tiny.toml", "--artifacts", "elsewhere", "Petrov"],
     "the served model of study 'tiny' (artifact "),
    (["predict", "--study", "tiny.toml"], "nothing to predict: give the input as arguments, or one per line on stdin"),
], ids=lambda value: value[-1] if isinstance(value, list) else None)
def test_user_errors_are_one_line_exit_2_and_lose_nothing(env, spec_file, tmp_path, monkeypatch, one_trial_study,
                                                          args, message):
    shutil.copytree(one_trial_study, env)

    def what_is_stored():
        study = stored(env)
        return (optuna.get_all_study_names(study._storage), study.user_attrs,
                [(t.number, t.state, t.params, t.values, t.user_attrs) for t in study.trials])

    before = what_is_stored()
    bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = hpsearch(*args)
    assert code == 2 and message in err, err
    assert "Traceback" not in err and "hunter2" not in err + out
    if not message.startswith("Invalid value"):  # click's usage errors come with a usage line
        assert len(err.strip().splitlines()) == 1
    assert what_is_stored() == before


def test_changed_direction_is_refused_and_loses_nothing(env, spec_file, tmp_path):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--quiet")
    before = [(t.number, t.state, t.values) for t in stored(env).trials]
    changed = tmp_path / "changed" / "tiny.toml"
    changed.parent.mkdir()
    changed.write_text(TINY_SPEC.format(epochs=2).replace('metric = "val_accuracy"\ndirection = "maximize"',
                                                          'metric = "val_loss"\ndirection = "minimize"'))
    code, _, err = hpsearch("run", "--study", str(changed), "--n-trials", "4")
    assert code == 2 and "study 'tiny' is stored to maximize val_accuracy, but" in err
    assert [(t.number, t.state, t.values) for t in stored(env).trials] == before


@pytest.mark.parametrize("signum, said, reason", [(signal.SIGINT, "interrupted", "interrupted by Ctrl-C"),
                                                  (signal.SIGTERM, "terminated", "interrupted by SIGTERM")])
def test_a_stop_signal_marks_the_running_trial_failed_and_resume_finishes(env, spec_file, signum, said, reason):
    train_every_epoch(spec_file)
    hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet")
    command = [sys.executable, "-m", "hpsearch", "run", "--study", str(spec_file), "--n-trials", "2",
               "--epochs", "1000"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    for line in process.stderr:  # wait until the second trial is training
        if line.startswith("  trial 1 epoch 3/") or time.monotonic() > deadline:
            break
    process.send_signal(signum)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert f"{said}: trial 1 was marked failed; finished trials are kept" in rest
    assert "Traceback" not in rest
    trials = stored(env).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"] == reason
    client = MlflowClient(f"sqlite:///{env / 'mlflow.db'}")
    interrupted = client.get_run(trials[1].user_attrs["mlflow_run_id"])
    assert interrupted.info.status == "KILLED" and interrupted.data.tags["fail_reason"] == reason
    assert client.get_run(stored(env).user_attrs["mlflow_parent_run_id"]).info.status == "KILLED"

    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2")
    assert code == 0, err
    assert [t.state for t in stored(env).trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]


def test_help_best_and_studies_start_without_torch_mlflow_or_plotting(env, spec_file):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet", "--no-mlflow")
    assert code == 0, err
    heavy = ("torch", "mlflow", "optuna_dashboard", "sklearn", "plotly", "matplotlib")
    probe = (f"import sys\nfrom hpsearch.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             f"print('imported:', *[name for name in {heavy!r} if name in sys.modules])")
    for args in (["--help"], ["best", "--study", "tiny"], ["studies"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=True)
        assert done.stdout.splitlines()[-1] == "imported:", (args, done.stdout)


def test_workers_that_oversubscribe_the_cores_are_warned_about():
    assert check_workers(1, 1, 0) is None
    warning = check_workers(2, cores(), 0)
    assert warning.startswith(f"warning: 2 workers x {cores()} torch thread")


def test_a_server_on_a_taken_or_foreign_address_is_one_line(env, spec_file):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet", "--no-mlflow")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        for args in (["dashboard", "--port", port], ["ui", "--port", port],
                     ["dashboard", "--host", "999.1.1.1", "--port", port]):
            code, _, err = hpsearch(*args)
            assert code == 2 and err.startswith("Error: cannot listen on ") and len(err.splitlines()) == 1, err


def test_a_study_tracked_in_another_store_is_refused_before_anything_changes(env, spec_file, tmp_path):
    hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet")
    before = [(t.number, t.state) for t in stored(env).trials]
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2",
                            "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}")
    assert code == 2 and "the study's MLflow parent run" in err and "the study was tracked elsewhere" in err
    assert [(t.number, t.state) for t in stored(env).trials] == before
