"""The whole-study stop rule ([stop] in a spec): judged from the storage, so it ends a search on every worker,
says why, and a resumed study knows it stopped."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from test_cli import hpsearch, refused, stored
from test_workers import worker

from hpsearch.search.budget import COUNTED, Plateau

# Accuracy never improves by more than 1: this rule stops a study as soon as it has 3 finished trials.
STOP = "\n[stop]\ntrials = 2\nmin_delta = 1.0\n"


def _study(direction: str, outcomes: list[float | None]) -> optuna.Study:
    """Trials finished in this order; None is a pruned trial."""
    study = optuna.create_study(direction=direction)
    for value in outcomes:
        study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.0}) if value is None
                        else create_trial(value=value))
    return study


@pytest.mark.parametrize(("direction", "outcomes", "stops"), [
    ("maximize", [0.5, 0.6, 0.601, 0.6015], True),  # 0.0015 better over the last 2: not above 0.002
    ("maximize", [0.5, 0.6, 0.601, 0.603], False),
    ("maximize", [0.5, 0.6, None, None], True),  # pruned trials are finished trials too
    ("maximize", [None, None, 0.6], False),  # nothing complete before the last 2 to compare with
    ("maximize", [0.5, 0.6], False),  # too few trials to judge
    ("minimize", [2.0, 1.5, 1.499, 1.4985], True),
    ("minimize", [2.0, 1.5, 1.499, 1.4], False),
    # Reached, then a trial that was running finishes far better: stopped all the same, and it is named.
    ("maximize", [0.5, 0.6, 0.601, 0.6015, 0.7], "best 0.7000, trial #4"),
    ("maximize", [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9005], "best 0.9005, trial #6"),
])
def test_the_rule_compares_the_best_before_the_last_trials_with_the_best_of_all(direction, outcomes, stops):
    plateau = Plateau(trials=2, min_delta=0.002, maximize=direction == "maximize")
    reason = plateau.reached(_study(direction, outcomes))
    assert (reason is not None) == bool(stops)
    if stops:
        assert reason.startswith("stopped: no improvement above 0.002 in the last 2 trials (best ")
        assert stops is True or f"({stops})" in reason


def test_a_search_stops_says_why_and_a_resume_runs_nothing_unless_told_to(env, spec_file):
    spec_file.write_text(spec_file.read_text() + STOP, encoding="utf-8")
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "10", "--no-mlflow")
    assert code == 0, err
    assert "stopped: no improvement above 1 in the last 2 trials (best " in err
    assert len(stored(env).get_trials(states=COUNTED)) == 3

    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "10", "--no-mlflow")
    assert code == 0 and "stopped: no improvement above 1 in the last 2 trials" in err
    assert "after 3 of 10 trials; nothing to run. Run again with --no-stop to search on." in err
    assert len(stored(env).trials) == 3

    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "4", "--no-mlflow", "--no-stop")
    assert code == 0 and "3/4 trials done, running up to 1" in err
    assert len(stored(env).get_trials(states=COUNTED)) == 4


def test_the_rule_stops_every_worker(tmp_path, data_root, spec_file):
    spec_file.write_text(spec_file.read_text() + STOP, encoding="utf-8")
    workdir = tmp_path / "runs"
    process = worker(["--study", str(spec_file), "--workdir", str(workdir), "--data-dir", str(data_root)],
                     "--n-trials", "12", "--n-jobs", "2", "--no-mlflow")
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'optuna.db'}")
    # The third finished trial ends the study; the other worker finishes the trial it is running, no more.
    assert 3 <= len(study.get_trials(states=COUNTED)) <= 4
    assert all(t.state != TrialState.RUNNING for t in study.trials)
    assert err.count("stopped: no improvement above 1 in the last 2 trials") == 2, err


@pytest.mark.parametrize(("table", "problem"), [
    ("[stop]\ntrials = 0", "stop.trials: must be a whole number >= 1 of finished trials, got 0"),
    ("[stop]\ntrials = 5\nmin_delta = -0.1", "stop.min_delta: must be a number >= 0, got -0.1"),
    ("[stop]\ntrials = 5\npatience = 3", "stop.patience: unknown key (known: min_delta, trials)"),
    ("stop = 5", "stop: must be a table, e.g. [stop] trials = 15, min_delta = 0.002"),
])
def test_a_bad_stop_rule_is_one_line(tmp_path, table, problem):
    assert problem in refused(tmp_path, "surnames", table)


def test_a_multi_objective_study_has_no_stop_rule(tmp_path):
    multi = 'metric = ["val_accuracy", "epoch_seconds"]\n[pruner]\ntype = "none"\n[stop]\ntrials = 5'
    assert "stop: a multi-objective study has no single best value to watch" in refused(tmp_path, "surnames", multi)


def test_the_spec_timeout_ends_a_run_and_says_so(env, spec_file):
    # A budget spent before the first trial could start: no trial runs, whatever the machine's speed.
    spec_file.write_text(spec_file.read_text().replace("n_trials = 3", "n_trials = 3\ntimeout = 1e-9"))
    code, _, err = hpsearch("run", "--study", str(spec_file), "--no-mlflow")
    assert code == 0 and not stored(env).trials, err
    assert "time budget of 1e-09 s spent: 0 of 3 trials finished. Run again to search on" in err
    # --timeout overrides the spec's: a longer one lets the next run finish the budget.
    code, _, err = hpsearch("run", "--study", str(spec_file), "--no-mlflow", "--timeout", "600")
    assert code == 0 and len(stored(env).trials) == 3 and "time budget" not in err, err
