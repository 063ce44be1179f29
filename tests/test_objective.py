from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpsearch.search.objective import Objective
from hpsearch.studies import load_spec, record
from hpsearch.training import TASKS, checkpoint
from hpsearch.training.loop import TrainingDiverged

PARAMS = {"cell": "lstm", "implementation": "handwritten", "bidirectional": True, "hidden_size": 12,
          "optimizer": "adam", "lr": 0.005, "batch_size": 16}


class Memory:
    """Checkpoints kept in memory, for trials outside a stored study."""

    def __init__(self) -> None:
        self.saved: dict[str, bytes] = {}

    def save(self, trial: optuna.Trial, content: bytes) -> dict[str, str]:
        self.saved[str(len(self.saved))] = content
        return {"checkpoint_artifact": str(len(self.saved) - 1)}


def objective(spec_file, data_root, epochs=2) -> Objective:
    spec = load_spec(str(spec_file), TASKS)
    task = TASKS[spec.task]
    return Objective(spec, task, task.load(str(data_root), spec.data), max_epochs=epochs, device=torch.device("cpu"),
                     checkpoints=Memory(), hooks=[])


def test_a_trial_is_reproducible_from_its_params(spec_file, data_root, tmp_path):
    run = objective(spec_file, data_root)
    first, second = optuna.trial.FixedTrial(PARAMS, number=0), optuna.trial.FixedTrial(PARAMS, number=1)
    assert run(first) == run(second)
    records = [record.read(trial) for trial in (first, second)]
    assert records[0].seed == records[1].seed
    models = [checkpoint.load(run.checkpoints.saved[r.checkpoint_artifact]).model for r in records]
    weights = [model.state_dict() for model in models]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert records[0].results["test_accuracy"] == records[1].results["test_accuracy"]


def test_diverging_loss_fails_the_trial_with_a_reason_and_the_study_goes_on(spec_file, data_root, tmp_path):
    run = objective(spec_file, data_root)
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
