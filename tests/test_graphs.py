"""Training steps replayed as CUDA graphs train as the eager steps do. They need a GPU, which CI lacks: these
tests are skipped there and run in the prepared GPU check (benchmarks/gpu.py's docstring)."""

from __future__ import annotations

import math

import pytest
import torch

from hpsearch.datasets.batching import tensorise, uniform_batches
from hpsearch.models import RecurrentClassifier
from hpsearch.studies.spec import Hyperparams
from hpsearch.training.classification import class_weights, train_epoch
from hpsearch.training.graphs import graphs_of
from hpsearch.training.loop import GRAPHED, OPTIMIZERS, make_optimizer


def test_no_graphs_off_a_gpu():
    model = RecurrentClassifier(5, 2)
    assert graphs_of(make_optimizer(Hyperparams(), model.parameters())) is None


def fit(optimizer: str, graphed: bool, epochs: int = 3, **model_options) -> tuple[list[float], list[torch.Tensor], int]:
    """Epoch losses and final weights of a small classifier trained on 600 sequences of lengths 2-6 under a
    cosine schedule (so a graph must see the learning rate change), and how many shapes were captured."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 7, (600,), generator=generator).tolist()
    sequences = [torch.randint(1, 20, (n,), generator=generator).tolist() for n in lengths]
    split = tensorise(sequences, torch.randint(0, 4, (600,), generator=generator).tolist()).to("cuda")
    torch.manual_seed(0)
    model = RecurrentClassifier(20, 4, embedding_dim=8, hidden_size=16, bidirectional=True, **model_options).cuda()
    opt = make_optimizer(Hyperparams(optimizer=optimizer, lr=0.01, momentum=0.5), model.parameters())
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    graphs = graphs_of(opt) if graphed else None
    weights = class_weights(split.labels, 4, 0.5)
    losses = []
    for _ in range(epochs):
        batches = uniform_batches(split.lengths, 16, generator)
        losses.append(train_epoch(model, split, batches, opt, 1.0, weights, graphs).metrics["loss"])
        schedule.step()
    return losses, [p.detach().clone() for p in model.parameters()], 0 if graphs is None else len(graphs)


def assert_same_training(optimizer: str, **model_options) -> None:
    eager_losses, eager_weights, _ = fit(optimizer, False, **model_options)
    losses, weights, captured = fit(optimizer, True, **model_options)
    assert captured >= 5  # a shape per length, and one for a left-over batch that happens to be of one length
    torch.testing.assert_close(losses, eager_losses, rtol=1e-4, atol=1e-5)
    for replayed, eager in zip(weights, eager_weights, strict=True):
        torch.testing.assert_close(replayed, eager, rtol=1e-3, atol=1e-4)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("optimizer", GRAPHED)
def test_every_capturable_optimizer_trains_the_same_replayed(optimizer):
    assert_same_training(optimizer, cell="gru")


@cuda
@pytest.mark.parametrize("optimizer", sorted(set(OPTIMIZERS) - set(GRAPHED)))
def test_an_optimizer_that_cannot_be_captured_trains_eagerly(optimizer):
    losses, _, captured = fit(optimizer, True, cell="gru")
    assert captured == 0
    assert all(math.isfinite(loss) for loss in losses)


@cuda
@pytest.mark.parametrize(("cell", "implementation", "pooling"), [("lstm", "builtin", "mean"), ("rnn", "builtin", "max"),
                                                                ("gru", "handwritten", "last"),
                                                                ("lstm", "handwritten", "max")])
def test_every_cell_trains_the_same_replayed(cell, implementation, pooling):
    assert_same_training("adam", cell=cell, implementation=implementation, pooling=pooling)
