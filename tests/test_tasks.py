"""The task contract: a task defined here, outside the package, runs a study, a report and a prediction; and the
built-in addition task, on numbers small enough to learn in seconds."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState
from test_cli import hpsearch, refused, stored
from torch import nn

from hpsearch.datasets import DataOptions, addition
from hpsearch.models import recurrent
from hpsearch.studies import Hyperparams, record
from hpsearch.training import TASKS, serving
from hpsearch.training.task import Epoch, Metric, Task

# -- a toy task: is the number of 1s in a bit string odd? -------------------------------------------------------


@dataclass(frozen=True)
class BitsOptions(DataOptions):
    length: int = 6


@dataclass(frozen=True)
class Bits:
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    fingerprint: str

    def to(self, device: torch.device) -> Bits:
        return replace(self, **{name: tuple(t.to(device) for t in getattr(self, name)) for name in ("train", "val", "test")})


class ParityHead(nn.Module):
    """The head the toy task adds to the shared encoder: the last step's state -> odd or even."""

    def __init__(self, hp: Hyperparams) -> None:
        super().__init__()
        self.embedding = nn.Embedding(2, hp.embedding_dim)
        self.rnn = recurrent(hp.embedding_dim, cell=hp.cell, implementation=hp.implementation,
                             hidden_size=hp.hidden_size, num_layers=hp.num_layers, bidirectional=False,
                             dropout=0.0, nonlinearity=hp.nonlinearity)
        self.head = nn.Linear(hp.hidden_size, 2)

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(self.embedding(bits))
        return self.head(outputs[:, -1])


class Parity(Task):
    name = "parity"
    metrics = (Metric("accuracy", "maximize"),)
    objective = "val_accuracy"
    data_options = BitsOptions
    training_memory = int(1e8)

    def load(self, root: str | None, options: BitsOptions) -> Bits:
        every = torch.tensor([[n >> i & 1 for i in range(options.length)] for n in range(2 ** options.length)])
        order = torch.randperm(len(every), generator=torch.Generator().manual_seed(options.split_seed))
        cut = len(every) // 4
        parts = [every[order[i]] for i in (slice(2 * cut, None), slice(0, cut), slice(cut, 2 * cut))]
        made = [(bits, bits.sum(1) % 2) for bits in parts]
        return Bits(*made, hashlib.sha256(every[order].numpy().tobytes()).hexdigest())

    def build(self, hp: Hyperparams, data: Bits) -> nn.Module:
        return ParityHead(hp)

    def describe(self, data: Bits) -> dict[str, Any]:
        return {"length": data.train[0].shape[1]}

    def restore(self, hp: Hyperparams, meta: Mapping[str, Any]) -> nn.Module:
        return ParityHead(hp)

    def train_epoch(self, model, data: Bits, optimizer, hp: Hyperparams, generator) -> Epoch:
        model.train()
        bits, labels = data.train
        losses = []
        for index in torch.randperm(len(labels), generator=generator).split(hp.batch_size):
            loss = nn.functional.cross_entropy(model(bits[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return Epoch({"loss": sum(losses) / len(losses)}, len(labels), len(losses))

    @torch.no_grad()
    def evaluate(self, model, data: Bits, split: str) -> dict[str, float]:
        bits, labels = getattr(data, split)
        logits = model.eval()(bits)
        return {"loss": nn.functional.cross_entropy(logits, labels).item(),
                "accuracy": (logits.argmax(1) == labels).float().mean().item()}

    @torch.no_grad()
    def predict(self, model, meta: Mapping[str, Any], queries: Sequence[str], top_k: int) -> list[dict[str, Any]]:
        bits = torch.tensor([[int(c) for c in query] for query in queries])
        return [{"bits": q, "odd": bool(odd)} for q, odd in zip(queries, model.eval()(bits).argmax(1).tolist(), strict=True)]

    def show(self, row: Mapping[str, Any]) -> str:
        return f"{row['bits']}: {'odd' if row['odd'] else 'even'}"

    def answer(self, row: Mapping[str, Any]) -> bool:
        return row["odd"]


PARITY_SPEC = """
task = "parity"
n_trials = 3
max_epochs = 3
[data]
length = 5
[sampler]
seed = 0
n_startup_trials = 2
[space]
cell = { choices = ["gru", "lstm"] }
hidden_size = { low = 8, high = 16 }
embedding_dim = 4
lr = { low = 1e-3, high = 3e-2, log = true }
batch_size = 8
"""


@pytest.fixture
def parity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    TASKS.register("parity", Parity())
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
    path = tmp_path / "parity.toml"
    path.write_text(PARITY_SPEC, encoding="utf-8")
    yield path
    TASKS.unregister("parity")


def test_a_task_defined_outside_the_package_runs_a_study_a_report_and_a_prediction(parity, tmp_path):
    code, out, err = hpsearch("run", "--study", str(parity))
    assert code == 0, err
    assert "val accuracy" in err and "best trial of 'parity'" in out
    study = stored(tmp_path / "runs", "parity")
    assert study.user_attrs["data"].items() >= {"split_seed": 0, "length": 5}.items()
    best = record.read(record.best_trial(study))
    assert {"val_accuracy", "val_loss", "test_accuracy", "test_loss"} == set(best.results)

    code, out, err = hpsearch("best", "--study", str(parity), "--json")
    assert code == 0 and json.loads(out)["test_accuracy"] == best.results["test_accuracy"]
    code, out, err = hpsearch("predict", "--study", str(parity), "10110", "00000")
    assert code == 0, err
    assert [line.split(": ")[0] for line in out.splitlines()] == ["10110", "00000"]
    assert all(line.split(": ")[1] in ("odd", "even") for line in out.splitlines())
    code, out, err = hpsearch("report", "--study", str(parity), "--no-mlflow")
    assert code == 0, err
    markdown = (tmp_path / "runs" / "reports" / "parity" / "report.md").read_text()
    assert "Per-class" not in markdown  # a task without classes has no per-class section
    assert "on the test split accuracy" in markdown and "## The comparison questions" in markdown


def test_a_task_installed_as_an_entry_point_reaches_every_worker(tmp_path, monkeypatch):
    # What `pip install` of a package declaring `[options.entry_points] hpsearch.tasks = parity = ...` leaves.
    site = tmp_path / "site"
    (site / "hpsearch_parity-1.0.dist-info").mkdir(parents=True)
    (site / "hpsearch_parity-1.0.dist-info" / "METADATA").write_text("Name: hpsearch-parity\nVersion: 1.0\n")
    (site / "hpsearch_parity-1.0.dist-info" / "entry_points.txt").write_text("[hpsearch.tasks]\nparity = test_tasks:Parity\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
    assert "parity" in TASKS and "parity" in list(TASKS)
    path = tmp_path / "parity.toml"
    path.write_text(PARITY_SPEC.replace("n_trials = 3", "n_trials = 2"), encoding="utf-8")
    code, out, err = hpsearch("run", "--study", str(path), "--n-jobs", "2", "--no-mlflow")
    assert code == 0, err
    # Each worker is a fresh interpreter that found the task by itself, before it looked at the budget.
    assert len(stored(tmp_path / "runs", "parity").get_trials(states=(TrialState.COMPLETE,))) == 2


# -- addition -------------------------------------------------------------------------------------------------


def test_digits_are_lowest_first_and_exact_beyond_64_bits():
    big = 10**30 - 1
    sums = addition.tensorise([(big, 1), (123, 45)], 31)
    assert sums.digits[1, :4, 0].tolist() == [3, 2, 1, 0] and sums.digits[1, :3, 1].tolist() == [5, 4, 0]
    assert addition.from_digits(sums.sums) == [10**30, 168]
    assert addition.from_digits(sums.digits[..., 0]) == [big, 123]


def test_held_out_pairs_never_reach_training_and_carry_chains_do():
    options = addition.Options(max_digits=2, val_size=300, test_size=300, split_seed=3)
    data = addition.load(options)
    assert len(data.held_out) == 600 and data.fingerprint == addition.load(options).fingerprint  # fixed by the seed
    rng = random.Random(0)
    pairs = set()
    for _ in range(50):
        batch = data.batch(rng, 64)
        pairs |= set(zip(addition.from_digits(batch.digits[..., 0]), addition.from_digits(batch.digits[..., 1]),
                         strict=True))
    assert len(pairs) > 1000 and not pairs & data.held_out
    chains = [(a, b) for a, b in pairs if a + b in (10, 100)]
    assert len(chains) > 10  # 999...9 + 1 and its kin are common in training
    carried = addition.from_digits(data.all_carry.sums)
    assert set(carried) == {100}
    a, b = (addition.from_digits(data.all_carry.digits[..., i]) for i in (0, 1))
    assert all(x % 10 and (x % 10) + (y % 10) == 10 for x, y in zip(a, b, strict=True))  # the chain starts at once
    assert data.longer.digits.shape[1] == 5 and min(addition.from_digits(data.longer.digits[..., 0])) >= 1000


ADDITION_SPEC = """
task = "addition"
prune_on = "val_digit_accuracy"
n_trials = 2
max_epochs = 10
[data]
max_digits = 3
steps_per_epoch = 100
val_size = 200
test_size = 200
[sampler]
seed = 0
[space]
cell = { choices = ["gru", "rnn"] }
nonlinearity = { choices = ["tanh", "relu"], when = { cell = "rnn" } }
hidden_size = 64
embedding_dim = 8
lr = 0.01
batch_size = 64
grad_clip = 1.0
[[enqueue]]
cell = "gru"
"""


@pytest.fixture
def adding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(tmp_path / "runs"))
    path = tmp_path / "add.toml"
    path.write_text(ADDITION_SPEC, encoding="utf-8")
    return path


def test_addition_learns_exact_sums_predicts_and_refuses_bad_input(adding, tmp_path):
    code, out, err = hpsearch("run", "--study", str(adding))
    assert code == 0, err
    study = stored(tmp_path / "runs", "add")
    gru = record.read(study.trials[0])
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].value == 1.0
    # A perfect validation score ends the trial: nothing can beat it.
    assert gru.results["steps_to_exact"] == gru.epochs * 100 and gru.epochs < 10
    assert gru.results["test_exact_match"] >= 0.99 and 0 <= gru.results["longer_exact_match"] <= 1
    assert 0 <= gru.results["all_carry_exact_match"] <= 1

    code, out, err = hpsearch("predict", "--study", str(adding), "999", "1")
    assert code == 0, err
    assert out.strip() == "999 + 1 = 1000: correct"
    code, out, _ = hpsearch("predict", "--study", str(adding), "--json", "123", "45")
    assert json.loads(out) == [{"a": "123", "b": "45", "sum": "168", "answer": "168", "correct": True,
                                "model": "trial #0", "trial": 0}]
    for bad, problem in ((["12", "x"], "'12 x': give two non-negative integers"),
                         (["1", "2", "3"], "'1 2 3': give two non-negative integers"),
                         (["-4", "5"], "'-4 5': give two non-negative integers"),
                         (["1234", "5"], "'1234 5': a number of 4 digits; this model was trained on numbers of up to "
                                         "3 digits")):
        code, out, err = hpsearch("predict", "--study", str(adding), "--", *bad)
        [line] = err.strip().splitlines()
        assert code == 2 and line.startswith(f"Error: {problem}")

    # As MLflow serves it: a row per sum, columns a and b.
    saved = tmp_path / "runs" / "artifacts" / gru.checkpoint_artifact
    served = serving._load_pyfunc(str(saved))
    assert served.predict(pd.DataFrame({"a": ["999", "123"], "b": ["1", "45"]})) == ["1000", "168"]

    code, out, err = hpsearch("best", "--study", str(adding))
    assert code == 0 and out.strip().endswith("baseline: task addition has no cheap baseline"), err
    code, out, err = hpsearch("report", "--study", str(adding), "--no-mlflow")
    assert code == 0, err
    markdown = (tmp_path / "runs" / "reports" / "add" / "report.md").read_text()
    assert "Baseline: task addition has no cheap baseline." in markdown
    # Pruned on digit accuracy, a pruned trial reported no exact match: only completed trials count.
    assert "from completed trials only (the pruned ones reported another metric)" in markdown
    assert "median steps_to_exact" in markdown and "median ms/step" in markdown
    assert "Nonlinearity: tanh or relu" in markdown and "on the test split exact match" in markdown
    # The best trial's configuration leaves out what addition ignores: a class weight is no choice it made.
    assert "| cell |" in markdown and "| class_balance |" not in markdown


@pytest.mark.parametrize(("line", "problem"), [
    ('prune_on = "val_loss"', "prune_on: val_loss is minimized, but the study is maximized; prune on a metric that "
                              "is maximized too"),
    ('prune_on = "val_accuracy"', "prune_on: unknown metric 'val_accuracy' (known: val_loss, val_exact_match, "
                                  "val_digit_accuracy)"),
    ('[data]\nmax_digits = 0', "data.max_digits: must be a whole number >= 1, got 0"),
    ('[data]\nval_fraction = 0.1', "data.val_fraction: unknown key"),
    ('[space]\nclass_balance = 0.5', "space.class_balance: addition has no classes to weigh; remove it"),
])
def test_an_addition_spec_is_checked_against_its_task(tmp_path, line, problem):
    assert problem in refused(tmp_path, "addition", line)


def test_builtin_addition_specs_load():
    from hpsearch.search.lookup import load

    for name, digits in (("addition", 20), ("addition-100", 100)):
        spec = load(name)
        assert spec.data.max_digits == digits and spec.prune_on == "val_digit_accuracy"
        assert optuna.study.StudyDirection.MAXIMIZE.name.lower() == spec.direction
