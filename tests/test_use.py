"""Using a study's results: predict, train (retrain) and the dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import optuna
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from servers import answers, free_port
from test_cli import hpsearch, stored

from hpsearch.cli import main
from hpsearch.studies import record


def test_predict_prints_top_k_per_name_from_arguments_or_stdin(env, spec_file):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0, err
    code, out, err = hpsearch("predict", "--study", str(spec_file), "Petrov", "McAdams", "Ølez", "李", "--top-k", "2")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("Petrov: ") and lines[0].count(",") == 1
    assert lines[2].startswith("Ølez: ")  # folded to "lez" as in training, so it is classified
    assert lines[3].startswith("李: cannot classify: no letter of the alphabet")

    result = CliRunner().invoke(main, ["predict", "--study", str(spec_file), "--json", "--top-k", "3"],
                                input="Petrov\n\nMcAdams\n")
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == ["Petrov", "McAdams"]
    assert all(len(row["predictions"]) == 3 for row in rows)
    assert abs(sum(p["probability"] for p in rows[0]["predictions"]) - 1) < 1e-5  # 3 made-up languages
    assert rows[0]["predictions"][0]["language"] == "Alpha" and rows[1]["predictions"][0]["language"] == "Beta"


def test_predict_without_a_completed_trial_is_one_line(env, spec_file):
    env.mkdir()
    study = optuna.create_study(study_name="tiny", storage=f"sqlite:///{env / 'optuna.db'}")
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    code, _, err = hpsearch("predict", "--study", str(spec_file), "Petrov")
    assert code == 2 and err.strip().splitlines() == [
        "Error: study 'tiny' has no completed trial yet; run `hpsearch run` first"]


def test_train_reproduces_a_trial_and_reports_spread_over_seeds(env, spec_file):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2")
    assert code == 0, err
    original = stored(env).trials[0]  # a startup trial: never pruned, trained its epochs
    assert original.state == TrialState.COMPLETE
    code, out, err = hpsearch("train", "--study", str(spec_file), "--trial", "0", "--quiet")
    assert code == 0, err
    lines = out.strip().splitlines()
    row = dict(zip(["seed", *lines[0].split()], lines[2].split(), strict=False))
    kept = record.read(original)
    assert int(row["seed"]) == kept.seed
    assert float(row["val_accuracy"]) == round(kept.results["val_accuracy"], 4)  # same seed, same result
    assert float(row["test_accuracy"]) == round(kept.results["test_accuracy"], 4)

    code, out, err = hpsearch("train", "--study", str(spec_file), "--trial", "0", "--seeds", "3", "--seed", "7",
                              "--epochs", "1", "--quiet")
    assert code == 0, err
    assert "over 3 seeds:" in out and "\nmean " in out and "\nstd " in out
    client = MlflowClient(f"sqlite:///{env / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], "tags.`hpsearch.retrain_of` = '0'")
    seeds = sorted(["7", "8", "9", str(original.user_attrs["seed"])])
    assert sorted(r.data.tags["hpsearch.seed"] for r in runs) == seeds
    assert all(r.info.status == "FINISHED" and "test_accuracy" in r.data.metrics for r in runs)
    assert len(stored(env).trials) == 2  # retraining adds nothing to the study

    code, _, err = hpsearch("train", "--study", str(spec_file), "--trial", "9")
    assert code == 2 and "study 'tiny' has no trial 9 with a configuration (trials 0-1)" in err


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_dashboard_serves_the_study_its_trials_and_artifacts(env, spec_file, data_root):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0, err
    code, out, err = hpsearch("report", "--study", str(spec_file), "--no-mlflow")
    assert code == 0, err
    port = free_port()
    command = [sys.executable, "-m", "hpsearch", "dashboard", "--study", str(spec_file), "--port", str(port)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        said = server.stderr.readline()
        assert f"at http://127.0.0.1:{port}/dashboard/studies/" in said, said
        body = answers(f"http://127.0.0.1:{port}/api/studies", server)
        assert body, "optuna-dashboard did not start"
        studies = json.loads(body)
        [summary] = studies["study_summaries"]
        assert summary["study_name"] == "tiny"
        detail = json.loads(get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}"))
        assert len(detail["trials"]) == 2
        artifacts = {a["filename"]: a["artifact_id"] for a in detail["artifacts"]}
        assert {"report.md", "pareto.png"} <= set(artifacts)
        best = stored(env).best_trial.number  # each completed trial's checkpoint is an artifact of that trial
        [checkpoint] = next(t["artifacts"] for t in detail["trials"] if t["number"] == best)
        assert checkpoint["filename"] == f"trial-{best}.pt"
        png = get(f"http://127.0.0.1:{port}/artifacts/{summary['study_id']}/{artifacts['pareto.png']}")
        assert png.startswith(b"\x89PNG")
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Attaching again adds nothing: the same files are already there.
    code, out, _ = hpsearch("report", "--study", str(spec_file), "--no-mlflow")
    assert "and 0 new artifacts" in out
