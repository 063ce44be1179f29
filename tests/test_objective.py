from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpsearch.datasets import TASKS, surnames
from hpsearch.search.artifacts import Folder
from hpsearch.search.objective import Objective
from hpsearch.search.training import TrainingDiverged
from hpsearch.studies import load_spec

PARAMS = {"cell": "lstm", "implementation": "handwritten", "bidirectional": True, "hidden_size": 12,
          "optimizer": "adam", "lr": 0.005, "batch_size": 16}


def objective(spec_file, data_root, tmp_path, epochs=2) -> Objective:
    spec = load_spec(str(spec_file), TASKS)
    data = surnames.load(data_root, split_seed=spec.data.split_seed)
    return Objective(spec, data, max_epochs=epochs, device=torch.device("cpu"),
                     checkpoints=Folder(tmp_path / "checkpoints"), hooks=[])


def test_a_trial_is_reproducible_from_its_params(spec_file, data_root, tmp_path):
    run = objective(spec_file, data_root, tmp_path)
    first, second = optuna.trial.FixedTrial(PARAMS, number=0), optuna.trial.FixedTrial(PARAMS, number=1)
    assert run(first) == run(second)
    assert first.user_attrs["seed"] == second.user_attrs["seed"]
    weights = [torch.load(t.user_attrs["checkpoint"], weights_only=True)["state_dict"] for t in (first, second)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert first.user_attrs["test_accuracy"] == second.user_attrs["test_accuracy"]


def test_diverging_loss_fails_the_trial_with_a_reason_and_the_study_goes_on(spec_file, data_root, tmp_path):
    run = objective(spec_file, data_root, tmp_path)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({**PARAMS, "cell": "rnn", "nonlinearity": "relu", "optimizer": "sgd", "momentum": 0.9,
                         "lr": 1e30})
    study.enqueue_trial(PARAMS)
    with pytest.warns(UserWarning, match="out of range"):
        study.optimize(run, n_trials=2, catch=(TrainingDiverged,))
    failed, complete = study.trials
    assert failed.state == TrialState.FAIL and complete.state == TrialState.COMPLETE
    assert failed.user_attrs["fail_reason"].startswith("TrainingDiverged: training loss became")
    assert math.isfinite(complete.value)
