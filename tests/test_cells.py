"""The hand-written layers against torch's: same parameters, outputs, final states and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from hpsearch.models import cells

KINDS = [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {})]
LENGTHS = torch.tensor([4, 9, 1, 6, 9, 3])  # unsorted, with ties and a length-1 sequence


def pair(kind: str, extra: dict, **settings) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    reference = getattr(nn, kind)(5, 7, **extra, **settings)
    mine = getattr(cells, kind)(5, 7, **extra, **settings)
    mine.load_state_dict(reference.state_dict())
    return reference, mine


def states(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def run(module: nn.Module, inputs, hx):
    """Outputs (padded), final states, and the gradients of a loss that touches all of them."""
    module.zero_grad()
    output, state = module(inputs, hx)
    padded = pad_packed_sequence(output, batch_first=module.batch_first)[0] if isinstance(inputs, PackedSequence) \
        else output
    loss = padded.pow(2).sum() + sum((s * (i + 1)).sin().sum() for i, s in enumerate(states(state)))
    loss.backward()
    return padded, states(state), {name: p.grad.clone() for name, p in module.named_parameters()}


def assert_same(reference_result, mine_result):
    (out_a, state_a, grads_a), (out_b, state_b, grads_b) = reference_result, mine_result
    torch.testing.assert_close(out_b, out_a, atol=1e-5, rtol=1e-5)
    assert len(state_a) == len(state_b)
    for a, b in zip(state_a, state_b, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize(("kind", "extra"), KINDS, ids=["rnn-tanh", "rnn-relu", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-first", "batch-first"])
def test_packed_batches_match_torch(kind, extra, num_layers, bidirectional, batch_first):
    reference, mine = pair(kind, extra, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    assert [(n, p.shape) for n, p in mine.named_parameters()] == [(n, p.shape) for n, p in reference.named_parameters()]
    x = torch.randn(6, 9, 5) if batch_first else torch.randn(9, 6, 5)
    packed = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
    assert_same(run(reference, packed, None), run(mine, packed, None))
    # A given initial state (in the caller's batch order) is used the same way.
    shape = (num_layers * (2 if bidirectional else 1), 6, 7)
    hx = tuple(torch.randn(shape) for _ in range(2)) if kind == "LSTM" else torch.randn(shape)
    assert_same(run(reference, packed, hx), run(mine, packed, hx))
    assert isinstance(mine(packed)[0], PackedSequence)


@pytest.mark.parametrize(("kind", "extra"), KINDS, ids=["rnn-tanh", "rnn-relu", "gru", "lstm"])
def test_padded_unbatched_and_biasless_inputs_match_torch(kind, extra):
    reference, mine = pair(kind, extra, num_layers=2, bidirectional=True)
    x = torch.randn(9, 6, 5)
    assert_same(run(reference, x, None), run(mine, x, None))
    single = torch.randn(4, 5)  # unbatched (time, features), as torch accepts
    assert_same(run(reference, single, None), run(mine, single, None))
    reference, mine = pair(kind, extra, bias=False)
    assert not any("bias" in name for name, _ in mine.named_parameters())
    assert_same(run(reference, x, None), run(mine, x, None))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_a_sequence_result_ignores_its_batch_and_padding(kind):
    torch.manual_seed(0)
    layer = getattr(cells, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(4, 8, 3)
    x_garbage = x.clone()
    for row, length in enumerate([8, 2, 5, 3]):
        x_garbage[row, length:] = 100.0  # padding that would show if it were ever read
    lengths = torch.tensor([8, 2, 5, 3])
    together, state = layer(pack_padded_sequence(x_garbage, lengths, batch_first=True, enforce_sorted=False))
    together = pad_packed_sequence(together, batch_first=True)[0]
    for row, length in enumerate(lengths.tolist()):
        alone, alone_state = layer(x[row:row + 1, :length])
        torch.testing.assert_close(together[row, :length], alone[0])
        for a, b in zip(states(alone_state), states(state), strict=True):
            torch.testing.assert_close(b[:, row], a[:, 0])
    # The backward direction starts at each sequence's own last element: its first output has seen it all.
    short = layer(pack_padded_sequence(x_garbage[1:2], lengths[1:2], batch_first=True))[0].data
    changed = x_garbage[1:2].clone()
    changed[0, 1] += 1.0  # the last real element of a length-2 sequence
    moved = layer(pack_padded_sequence(changed, lengths[1:2], batch_first=True))[0].data
    assert not torch.allclose(short[0, 4:], moved[0, 4:])  # backward half of the first step's output


def test_a_wrong_initial_state_is_refused():
    layer = cells.LSTM(3, 4)
    with pytest.raises(RuntimeError, match="hidden state"):
        layer(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))  # an LSTM needs (h, c)
