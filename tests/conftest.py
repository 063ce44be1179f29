"""Tiny data and specs made by the tests themselves: offline and fast."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
import torch

# Tiny models gain nothing from a second thread, and it makes tests crawl when the machine is busy.
torch.set_num_threads(1)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Each made-up language marks its names so that a small model learns them in a couple of epochs.
PATTERNS = {"Alpha": "{}ov", "Beta": "Mc{}", "Gamma": "{}ez"}

TINY_SPEC = """
task = "surnames"
metric = "val_accuracy"
direction = "maximize"
n_trials = 3
max_epochs = {epochs}

[data]
split_seed = 1

[sampler]
seed = 0
n_startup_trials = 2

[pruner]
type = "median"
n_startup_trials = 2
n_warmup_steps = 1

[space]
cell = {{ choices = ["rnn", "gru", "lstm"] }}
implementation = {{ choices = ["builtin", "handwritten"] }}
nonlinearity = {{ choices = ["tanh", "relu"], when = {{ cell = "rnn" }} }}
bidirectional = {{ choices = [true, false] }}
hidden_size = {{ low = 8, high = 16, log = true }}
embedding_dim = 8
optimizer = {{ choices = ["adam", "sgd"] }}
momentum = {{ low = 0.0, high = 0.9, when = {{ optimizer = "sgd" }} }}
lr = {{ low = 1e-3, high = 1e-2, log = true }}
batch_size = {{ choices = [16, 32] }}
"""


def train_every_epoch(spec: Path) -> None:
    """No trial of this spec ends early at a perfect score, for tests that stop or kill one mid-trial: the tiny
    data reaches validation accuracy 1.0 in a few epochs, validation loss has no value that ends a trial."""
    spec.write_text(spec.read_text().replace('metric = "val_accuracy"\ndirection = "maximize"',
                                             'metric = "val_loss"\ndirection = "minimize"'), encoding="utf-8")


def write_names(root: Path, per_language: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder = root / "names"
    folder.mkdir(parents=True)
    for language, pattern in PATTERNS.items():
        names = [pattern.format("".join(rng.choice("abcdefghiklmnoprstu") for _ in range(rng.randint(3, 6))))
                 .capitalize() for _ in range(per_language)]
        (folder / f"{language}.txt").write_text("\n".join(names + names[:5]) + "\n", encoding="utf-8")
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment():
    """Nothing from the caller's shell decides where tests read data or write studies and runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("HPSEARCH_WORKDIR", "HPSEARCH_STORAGE", "HPSEARCH_DATA", "MLFLOW_TRACKING_URI"):
            patch.delenv(name, raising=False)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return write_names(tmp_path / "data")


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC.format(epochs=2), encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Working folder and data root in tmp, through the environment variables a user would set."""
    workdir = tmp_path / "runs"
    monkeypatch.setenv("HPSEARCH_WORKDIR", str(workdir))
    monkeypatch.setenv("HPSEARCH_DATA", str(data_root))
    return workdir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with servers.postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh database per test on the session's PostgreSQL cluster."""
    return servers.create_database(postgres_server, f"t{abs(hash(request.node.nodeid)) % 10**9}")


@pytest.fixture
def mlflow_server_url(tmp_path: Path) -> Iterator[str]:
    with servers.mlflow_server(tmp_path / "mlflow-server") as url:
        yield url
