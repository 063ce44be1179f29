"""`hpsearch ablate`: one factor at a time around a trial, paired seeds, its own resumable study, the report."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import TINY_SPEC, train_every_epoch, write_names
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from test_cli import hpsearch, stored
from test_tasks import ADDITION_SPEC, PARITY_SPEC, Parity

from hpsearch.errors import HpsearchError
from hpsearch.search import lookup
from hpsearch.studies import record
from hpsearch.studies.ablation import Design, levels
from hpsearch.training import TASKS
from hpsearch.training.task import Epoch

# A known base: the parent's first trial is this configuration.
BASE = """
[[enqueue]]
cell = "gru"
implementation = "builtin"
bidirectional = true
hidden_size = 16
optimizer = "adam"
lr = 0.005
batch_size = 16
"""


@pytest.fixture
def parent(env: Path, tmp_path: Path) -> Path:
    """A one-trial study of the tiny surnames spec whose trial is BASE. Its objective is the validation loss,
    which no trial reaches a perfect value of: every trial trains all its epochs, and levels do not all tie."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC.format(epochs=2) + BASE, encoding="utf-8")
    train_every_epoch(path)
    code, _, err = hpsearch("run", "--study", str(path), "--n-trials", "1", "--quiet")
    assert code == 0, err
    return path


def ablation_trials(workdir: Path, name: str = "tiny:ablation") -> list[optuna.trial.FrozenTrial]:
    return stored(workdir, name).get_trials(states=(TrialState.COMPLETE,))


def test_levels_follow_the_space_around_the_base():
    spec = lookup.load("surnames")
    base = {"cell": "gru", "bidirectional": True, "num_layers": 2, "hidden_size": 128, "lr": 0.003, "dropout": 0.5,
            "optimizer": "adam", "batch_size": 32, "embedding_dim": 64, "momentum": 0.0}
    assert levels("cell", None, spec, base) == ("rnn", "gru", "lstm")
    assert levels("bidirectional", None, spec, base) == (True, False)
    assert levels("num_layers", None, spec, base) == (1, 2, 3)
    assert levels("lr", None, spec, base) == (0.0003, 0.0009, 0.003, 0.009, 0.03)
    assert levels("hidden_size", None, spec, base) == (32, 64, 128, 256, 512)
    assert levels("dropout", None, spec, base) == (0.0, 0.15, 0.3, 0.45, 0.5, 0.6)  # the base joins the spread
    assert levels("batch_size", ("8", "128"), spec, base) == (8, 32, 128)  # the base is always a level
    for factor, given, problem in (
            ("momentum", None, "--factor momentum: the spec uses it only when optimizer is sgd or rmsprop, and the "
                               "base trial does not"),
            ("colour", None, "--factor colour: not a parameter of task surnames (known: cell,"),
            ("lr", ("fast",), "--factor lr: 'fast' is not a valid lr (a number)"),
            ("cell", (), "--factor cell=: no level after '='"),
            ("lr", ("0",), "--factor lr: 0.0 is not a possible lr (must be > 0)"),
            ("cell", ("gru", "transformer"), "--factor cell: 'transformer' is not a valid cell (one of rnn, gru, "
                                             "lstm)"),
            ("bidirectional", ("yes",), "--factor bidirectional: 'yes' is not a valid bidirectional (true or false)")):
        with pytest.raises(HpsearchError) as error:
            levels(factor, given, spec, base)
        assert str(error.value).startswith(problem), str(error.value)


def test_an_ablation_pairs_seeds_keeps_its_own_study_resumes_and_reports(parent, env):
    base_trial = stored(env).trials[0]
    base = record.read(base_trial)
    args = ("ablate", "--study", str(parent), "--factor", "cell", "--factor", "bidirectional", "--repeats", "2")
    code, out, err = hpsearch(*args)
    assert code == 0, err
    assert "starting study 'tiny:ablation'" in err and "0/8 trials done" in err
    # The parent is untouched: its sampler and importances never see the ablation's trials.
    assert len(stored(env).trials) == 1
    trials = ablation_trials(env)
    assert len(trials) == 8  # the base twice, rnn and lstm twice, unidirectional twice
    for trial in trials:
        run, hp = record.read(trial).ablation, record.read(trial).hyperparams
        changed = {k for k in hp if hp[k] != base.hyperparams[k]}
        assert changed == ({run["factor"]} if run["factor"] else set())
        assert hp.get(run["factor"], None) == run["level"] or run["factor"] is None
        assert record.read(trial).seed == base.seed + run["repeat"]  # every level: the same seeds
        assert record.read(trial).epochs == 2 and not trial.intermediate_values.keys() - {1, 2}
    # Repeat 0 of the base is the parent's trial again: same configuration, same seed, same result.
    again = next(t for t in trials if t.params == {"repeat": 0})
    assert again.value == base_trial.value
    for factor in ("cell", "bidirectional"):
        line = next(line for line in out.splitlines() if line.startswith(f"{factor}: "))
        assert " is best on val_loss (" in line and "over 2 seeds" in line
        assert "the lead is beyond the seed-to-seed spread" in line or "within the seed-to-seed spread" in line
    assert "gru (base)" in out and "bi (base)" in out and "val_loss - base [95% interval]" in out

    # Its trials are MLflow runs under the ablation study's own parent run.
    client = MlflowClient(f"sqlite:///{env / 'mlflow.db'}")
    parent_run = stored(env, "tiny:ablation").user_attrs["mlflow_parent_run_id"]
    runs = client.search_runs([client.get_experiment_by_name("tiny:ablation").experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{parent_run}'")
    assert len(runs) == 8 and {r.data.params["ablation_of"] for r in runs} == {"tiny"}

    # The same command again trains nothing; more repeats train only the new ones.
    code, _, err = hpsearch(*args)
    assert code == 0 and "already has 8 finished trials" in err and len(ablation_trials(env)) == 8
    code, _, err = hpsearch(*args[:-1], "3")
    assert code == 0, err
    assert len(ablation_trials(env)) == 12 and len(stored(env, "tiny:ablation").trials) == 12

    code, _, err = hpsearch("report", "--study", str(parent), "--no-mlflow")
    assert code == 0, err
    folder = env / "reports" / "tiny"
    markdown = (folder / "report.md").read_text()
    assert "## Controlled comparisons: ablation 'tiny:ablation'" in markdown
    assert "### Ablation: cell" in markdown and "over 3 seeds" in markdown
    assert "difference from the base level, seed by seed [95% interval]" in markdown
    assert (folder / "ablation_cell.png").stat().st_size > 10_000 and (folder / "ablation_bidirectional.png").exists()


def test_an_interrupted_ablation_resumes_without_redoing_finished_trials(parent, env):
    command = [sys.executable, "-m", "hpsearch", "ablate", "--study", str(parent), "--factor", "cell",
               "--repeats", "2", "--epochs", "30", "--no-mlflow"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    for line in process.stderr:  # the third trial is training
        if line.startswith("  trial 2 epoch 3/") or time.monotonic() > deadline:
            break
    process.send_signal(2)
    assert process.wait(timeout=60) == 130
    before = {t.number: (t.state, t.params, t.value) for t in stored(env, "tiny:ablation").trials}
    finished = [n for n, (state, _, _) in before.items() if state == TrialState.COMPLETE]
    assert finished == [0, 1] and before[2][0] == TrialState.FAIL

    code, _, err = hpsearch(*command[3:])
    assert code == 0, err
    assert "resuming study 'tiny:ablation'" in err and "2/6 trials done" in err
    after = stored(env, "tiny:ablation").trials
    assert all((t.state, t.params, t.value) == before[t.number] for t in after if t.number in finished)
    done = [t.params for t in after if t.state == TrialState.COMPLETE]
    assert len(done) == 6 and len({tuple(sorted(p.items())) for p in done}) == 6  # each planned trial once
    assert before[2][1] in done  # the interrupted trial ran again


def test_an_ablation_of_addition_ranks_levels_by_steps_to_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
    spec = tmp_path / "add.toml"
    spec.write_text(ADDITION_SPEC, encoding="utf-8")
    code, _, err = hpsearch("run", "--study", str(spec), "--n-trials", "1", "--quiet", "--no-mlflow")
    assert code == 0, err
    code, out, err = hpsearch("ablate", "--study", str(spec), "--factor", "hidden_size=16,64", "--repeats", "2",
                              "--metric", "steps_to_exact", "--no-mlflow", "--quiet")
    assert code == 0, err
    trials = ablation_trials(tmp_path / "runs", "add:ablation")
    assert len(trials) == 4
    steps = {(t.params.get("hidden_size", 64), t.params["repeat"]): record.read(t).results["steps_to_exact"]
             for t in trials}
    line = next(line for line in out.splitlines() if line.startswith("hidden_size: "))
    known = {h: [s for (size, _), s in steps.items() if size == h and s is not None] for h in (16, 64)}
    means = {h: sum(v) / len(v) for h, v in known.items() if v}
    assert line.startswith(f"hidden_size: {min(means, key=means.get)}"), (line, steps)  # fewest steps is best
    assert "is best on steps_to_exact" in line


@pytest.mark.parametrize("args, message", [
    (["--factor", "cell", "--base", "5"], "--base 5: not a completed trial of study 'tiny'; give best or the "
                                          "number of a completed trial (0)"),
    (["--factor", "embedding_dim"], "--factor embedding_dim: the spec fixes it at 8, so there is no range to vary "
                                    "around; give the levels, e.g. --factor embedding_dim=8,16"),
    (["--factor", "dropout=0.2,1.5"], "--factor dropout: 1.5 is not a possible dropout (must be >= 0 and < 1)"),
    (["--factor", "cell", "--metric", "accuracy"], "--metric accuracy: not a recorded metric of task surnames"),
    (["--factor", "cell", "--name", "tiny"], "--name 'tiny' is the parent study"),
    (["--factor", "cell", "--name", "a/b"], "--name 'a/b': use letters, digits"),
    (["--factor", "cell", "--epochs", "3"], "ablation study 'tiny:ablation' cannot take these trials: its trials "
                                            "trained 2 epochs, not 3; pass --base 0 (and the same --epochs)"),
], ids=lambda value: value[1] if isinstance(value, list) else None)
def test_ablation_errors_are_one_line_exit_2_and_lose_nothing(parent, env, args, message):
    code, _, err = hpsearch("ablate", "--study", str(parent), "--factor", "bidirectional", "--repeats", "1",
                            "--no-mlflow", "--quiet")
    assert code == 0, err

    def what_is_stored():
        return [(s.study_name, [(t.number, t.state, t.params, t.value) for t in
                                optuna.load_study(study_name=s.study_name, storage=s._storage).trials])
                for s in [stored(env), stored(env, "tiny:ablation")]]

    before = what_is_stored()
    code, _, err = hpsearch("ablate", "--study", str(parent), *args, "--repeats", "1", "--no-mlflow")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert what_is_stored() == before


def test_ablating_a_study_that_was_never_run_says_to_run_it(env, spec_file):
    code, _, err = hpsearch("ablate", "--study", str(spec_file), "--factor", "cell")
    assert code == 2 and "no study storage at" in err and "run `hpsearch run` first" in err
    other = spec_file.with_name("other.toml")
    other.write_text('name = "other"\n' + spec_file.read_text())
    hpsearch("run", "--study", str(other), "--n-trials", "1", "--quiet", "--no-mlflow")
    code, _, err = hpsearch("ablate", "--study", str(spec_file), "--factor", "cell")
    assert code == 2 and "no study 'tiny'" in err and "run `hpsearch run --study tiny` first" in err
    assert len(err.strip().splitlines()) == 1


def test_a_design_differs_only_where_trials_are_no_longer_comparable():
    design = Design("p", 0, {"cell": "gru"}, seed=5, max_epochs=4, factors={"cell": ("gru", "rnn")}, repeats=2,
                    rank_by="val_accuracy", maximize=True)
    more = dataclasses.replace(design, factors={"bidirectional": (True, False)}, repeats=3)
    assert design.differs(more) is None
    joined = more.joined(design)
    assert joined.factors == {"cell": ("gru", "rnn"), "bidirectional": (True, False)} and joined.repeats == 3
    assert "epochs" in dataclasses.replace(design, max_epochs=5).differs(design)
    assert [(r.factor, r.level, r.repeat) for r in design.runs()] == [(None, None, 0), ("cell", "rnn", 0),
                                                                      (None, None, 1), ("cell", "rnn", 1)]


class Unstable(Parity):
    """Parity whose loss turns NaN above a learning rate of 1, as a real model's can."""

    def train_epoch(self, model, data, optimizer, hp, generator) -> Epoch:
        trained = super().train_epoch(model, data, optimizer, hp, generator)
        return Epoch({"loss": math.nan}, trained.samples, trained.steps) if hp.lr > 1 else trained


def test_a_diverged_level_is_a_result_not_a_trial_to_retry(tmp_path, monkeypatch):
    TASKS.register("parity", Unstable())
    try:
        monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
        spec = tmp_path / "parity.toml"
        spec.write_text(PARITY_SPEC, encoding="utf-8")
        assert hpsearch("run", "--study", str(spec), "--n-trials", "1", "--quiet", "--no-mlflow")[0] == 0
        args = ("ablate", "--study", str(spec), "--factor", "lr=10", "--repeats", "2", "--no-mlflow", "--quiet")
        code, out, err = hpsearch(*args)
        assert code == 0, err
        trials = stored(tmp_path / "runs", "parity:ablation").trials
        diverged = [t for t in trials if t.params.get("lr") == 10]
        assert [t.state for t in diverged] == [TrialState.FAIL] * 2
        assert all(record.read(t).fail_reason.startswith("TrainingDiverged") for t in diverged)
        row = next(line.split() for line in out.splitlines() if line.startswith("10.0 "))
        assert row[1:3] == ["0", "2"]  # no seed completed, both diverged
        assert hpsearch(*args)[0] == 0
        assert len(stored(tmp_path / "runs", "parity:ablation").trials) == len(trials)  # nothing queued again
    finally:
        TASKS.unregister("parity")


def test_an_ablation_on_other_data_than_its_parents_is_refused(parent, env, tmp_path):
    other = write_names(tmp_path / "other", seed=7)
    code, _, err = hpsearch("ablate", "--study", str(parent), "--factor", "cell", "--data-dir", str(other),
                            "--no-mlflow")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "study 'tiny' trained on other data, so its trial cannot be ablated here: the data found now" in err
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{env / 'optuna.db'}")] == ["tiny"]
