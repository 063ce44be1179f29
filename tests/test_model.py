from __future__ import annotations

from typing import get_args

import pytest
import torch

from hpsearch.models import CELLS, RecurrentClassifier
from hpsearch.studies.spec import Cell, Hyperparams, Implementation, Optimizer
from hpsearch.training.classification import ClassifierHyperparams, class_weights
from hpsearch.training.loop import OPTIMIZERS, make_optimizer
from hpsearch.training.surnames import Surnames


@pytest.mark.parametrize("implementation", get_args(Implementation))
@pytest.mark.parametrize("cell", get_args(Cell))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_padding_and_order_never_change_a_prediction(implementation, cell, bidirectional, num_layers, pooling):
    torch.manual_seed(0)
    model = RecurrentClassifier(10, 4, cell=cell, embedding_dim=6, hidden_size=5, num_layers=num_layers,
                                bidirectional=bidirectional, dropout=0.3, implementation=implementation,
                                pooling=pooling).eval()
    short = torch.tensor([[3, 1, 4]])
    alone = model(short, torch.tensor([3]))  # no padding: not packed
    assert alone.shape == (1, 4)
    # The same sequence padded to 7 and batched with a longer one must give the same logits.
    batch = torch.tensor([[3, 1, 4, 0, 0, 0, 0], [2, 7, 1, 8, 2, 8, 1]])
    together = model(batch, torch.tensor([3, 7]))
    assert together.shape == (2, 4)
    torch.testing.assert_close(together[0:1], alone)
    # Whatever sits in the padding is never read.
    garbage = batch.clone()
    garbage[0, 3:] = 9
    torch.testing.assert_close(model(garbage, torch.tensor([3, 7])), together)
    # Longest first, as training batches come (packed without sorting), each row keeps its logits.
    torch.testing.assert_close(model(garbage.flip(0), torch.tensor([7, 3])), together.flip(0))


def test_backward_direction_sees_the_whole_sequence():
    torch.manual_seed(0)
    model = RecurrentClassifier(10, 3, cell="gru", embedding_dim=4, hidden_size=4, bidirectional=True).eval()
    a = model(torch.tensor([[1, 2, 3]]), torch.tensor([3]))
    b = model(torch.tensor([[5, 2, 3]]), torch.tensor([3]))
    assert not torch.allclose(a, b)  # a different first character reaches the final state


def test_every_spec_value_has_an_implementation():
    assert set(get_args(Implementation)) == set(CELLS)
    assert all(set(get_args(Cell)) == set(layers) for layers in CELLS.values())
    assert set(get_args(Optimizer)) == set(OPTIMIZERS)
    model = RecurrentClassifier(5, 2)
    for name in OPTIMIZERS:  # each takes a step, fused or not, on the CPU
        optimizer = make_optimizer(Hyperparams(optimizer=name, momentum=0.5, lr=0.1), model.parameters())
        before = model.head.weight.detach().clone()
        model(torch.tensor([[1, 2, 3]]), torch.tensor([3])).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        assert not torch.equal(model.head.weight, before), name


def test_class_weights_interpolate_between_plain_and_balanced():
    labels = torch.tensor([0] * 90 + [1] * 10)
    assert torch.allclose(class_weights(labels, 2, 0.0), torch.ones(2))
    balanced = class_weights(labels, 2, 1.0)
    assert torch.isclose(balanced[0] * 90, balanced[1] * 10)  # each class carries the same total weight
    assert torch.isclose((balanced[labels]).mean(), torch.tensor(1.0))


def test_token_dropout_blanks_tokens_in_training_only():
    torch.manual_seed(0)
    plain = RecurrentClassifier(10, 3, cell="gru", embedding_dim=4, hidden_size=4, bidirectional=True)
    blanking = RecurrentClassifier(10, 3, cell="gru", embedding_dim=4, hidden_size=4, bidirectional=True,
                                   token_dropout=1 - 1e-9)
    blanking.load_state_dict(plain.state_dict())
    tokens, other, lengths = torch.tensor([[3, 1, 4]]), torch.tensor([[5, 9, 2]]), torch.tensor([3])
    # Evaluation reads every token.
    torch.testing.assert_close(blanking.eval()(tokens, lengths), plain.eval()(tokens, lengths))
    # Training with every token blanked reads padding of the same length: what the tokens were no longer counts.
    blanking.train()
    torch.testing.assert_close(blanking(tokens, lengths), blanking(other, lengths))
    torch.testing.assert_close(blanking(tokens, lengths), plain.eval()(torch.zeros_like(tokens), lengths))
    assert not torch.allclose(blanking(tokens, lengths), plain(tokens, lengths))


def test_the_spec_reaches_the_classifier_token_dropout():
    model = Surnames().restore(ClassifierHyperparams(token_dropout=0.2), {"vocab_size": 10, "classes": ["a", "b"]})
    assert model.token_dropout == 0.2
