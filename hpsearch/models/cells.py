"""Hand-written RNN, GRU and LSTM layers: drop-in replacements for ``torch.nn.RNN``/``GRU``/``LSTM``.

Same constructor, parameter names and shapes, forward signature and outputs, so a ``state_dict`` moves
between the two and the search can compare them on equal terms. Two things keep them fast in Python:

- the input projection of every time step is one matmul per layer and direction, done before the loop;
- a step is one fused ``addmm`` for all gates plus a few elementwise ops.

Variable lengths work the way torch's own kernels do: a packed batch is sorted longest first, so at step
``t`` the sequences still running are the first ``batch_sizes[t]`` rows. Forward, rows that have ended are
set aside as final states; backward, each row joins when the reversed time reaches its own last element.
No padded position is ever read.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

# A step: (projected input, state, hidden-to-hidden weight, hidden bias or None where the projection already
# holds it) -> new state. The state is a tuple: (h,) for RNN and GRU, (h, c) for LSTM; h is the step's output.
State = tuple[Tensor, ...]
Step = Callable[[Tensor, State, Tensor, Tensor | None], State]


def _rnn_step(activation: Callable[[Tensor], Tensor]) -> Step:
    def step(x: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
        return (activation(torch.addmm(x, state[0], w_hh.t())),)
    return step


def _gru_step(x: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    (h,) = state
    # torch's formulation: the reset gate multiplies the hidden projection *including* its bias, so b_hh
    # cannot be folded into the input projection here as it is for RNN and LSTM.
    hidden = h.matmul(w_hh.t()) if b_hh is None else torch.addmm(b_hh, h, w_hh.t())
    x_rz, x_n = x.split([2 * h.shape[1], h.shape[1]], dim=1)
    h_rz, h_n = hidden.split([2 * h.shape[1], h.shape[1]], dim=1)
    r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)
    n = torch.tanh(torch.addcmul(x_n, r, h_n))
    return (torch.lerp(n, h, z),)  # (1 - z) * n + z * h


def _lstm_step(x: Tensor, state: State, w_hh: Tensor, b_hh: Tensor | None) -> State:
    h, c = state
    gates = torch.addmm(x, h, w_hh.t())
    # One sigmoid over all four gates (the cell gate's share is unused) costs less than three calls.
    i, f, _, o = torch.sigmoid(gates).chunk(4, dim=1)
    g = torch.tanh(gates[:, 2 * h.shape[1]:3 * h.shape[1]])
    c = torch.addcmul(f * c, i, g)
    return o * torch.tanh(c), c


_SUFFIXES = ("", "_reverse")  # parameter-name suffix of each direction, as torch names them


class _Recurrent(nn.Module):
    """Shared by the three layers: parameters, packing, layers and directions. Subclasses pick the step."""

    gates = 1
    states = 1  # tensors in the state: 2 for the LSTM's (h, c)
    fold_hidden_bias = True  # b_hh only adds to the gates, so it can join b_ih in the input projection

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        if not 0 <= dropout <= 1:
            raise ValueError(f"dropout should be a number in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        rows = self.gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in _SUFFIXES[:self.num_directions]:
                self.register_parameter(f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(rows, layer_input)))
                self.register_parameter(f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(rows, hidden_size)))
                if bias:
                    self.register_parameter(f"bias_ih_l{layer}{suffix}", nn.Parameter(torch.empty(rows)))
                    self.register_parameter(f"bias_hh_l{layer}{suffix}", nn.Parameter(torch.empty(rows)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, dropout={self.dropout}, bidirectional={self.bidirectional}")

    def _step(self) -> Step:
        raise NotImplementedError

    def forward(self, input: Tensor | PackedSequence, hx: Tensor | tuple[Tensor, ...] | None = None):
        packed = isinstance(input, PackedSequence)
        unbatched = not packed and input.dim() == 2
        if packed:
            data, batch_sizes = input.data, input.batch_sizes
            sorted_indices, unsorted_indices = input.sorted_indices, input.unsorted_indices
        else:
            # A padded batch is a packed one in which every sequence runs the full length, unsorted.
            steps = input.unsqueeze(1) if unbatched else input.transpose(0, 1) if self.batch_first else input
            data = steps.reshape(-1, steps.shape[2])
            batch_sizes = torch.full((steps.shape[0],), steps.shape[1], dtype=torch.int64)
            sorted_indices = unsorted_indices = None
        initial = self._initial_state(hx, int(batch_sizes[0]), data, unbatched, sorted_indices)

        sizes, step = batch_sizes.tolist(), self._step()
        finals: list[State] = []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout and self.training:
                data = nn.functional.dropout(data, self.dropout, training=True)
            outputs = []
            for direction, suffix in enumerate(_SUFFIXES[:self.num_directions]):
                w_ih, w_hh, b_ih, b_hh = (getattr(self, f"{name}_l{layer}{suffix}", None)
                                          for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                if self.fold_hidden_bias and b_hh is not None:
                    b_ih, b_hh = b_ih + b_hh, None
                # Every time step's input projection at once: one matmul instead of one per step.
                projected = data.matmul(w_ih.t()) if b_ih is None else torch.addmm(b_ih, data, w_ih.t())
                start = tuple(tensor[layer * self.num_directions + direction] for tensor in initial)
                run = _run_backward if direction else _run_forward
                output, final = run(step, projected, start, sizes, w_hh, b_hh)
                outputs.append(output)
                finals.append(final)
            data = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)

        state = tuple(torch.stack(tensors) for tensors in zip(*finals, strict=True))
        if unsorted_indices is not None:
            state = tuple(tensor.index_select(1, unsorted_indices) for tensor in state)
        if packed:
            output = PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)
        else:
            output = data.reshape(len(sizes), -1, data.shape[1])
            if unbatched:
                output, state = output.squeeze(1), tuple(tensor.squeeze(1) for tensor in state)
            elif self.batch_first:
                output = output.transpose(0, 1)
        return output, state if self.states > 1 else state[0]

    def _initial_state(self, hx, batch: int, data: Tensor, unbatched: bool,
                       sorted_indices: Tensor | None) -> State:
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if hx is None:
            return (data.new_zeros(expected),) * self.states
        hx = hx if isinstance(hx, tuple) else (hx,)
        if unbatched:
            hx = tuple(tensor.unsqueeze(1) for tensor in hx)
        if len(hx) != self.states or any(tuple(tensor.shape) != expected for tensor in hx):
            raise RuntimeError(f"Expected {self.states} hidden state(s) of size {expected}, "
                               f"got {[tuple(tensor.shape) for tensor in hx]}")
        return hx if sorted_indices is None else tuple(tensor.index_select(1, sorted_indices) for tensor in hx)


def _run_forward(step: Step, projected: Tensor, state: State, sizes: list[int], w_hh: Tensor,
                 b_hh: Tensor | None) -> tuple[Tensor, State]:
    """One direction, oldest step first. Returns the packed outputs and every sequence's final state."""
    outputs, ended = [], []
    # One split, not a slice per step: a slice's gradient is a zero tensor of the whole input, which made
    # the backward pass quadratic in the sequence length (40x slower than torch.nn at 512 steps).
    for size, x in zip(sizes, projected.split(sizes), strict=True):
        if size < state[0].shape[0]:  # the shortest sequences (the last rows) have ended: keep their state
            ended.append(tuple(tensor[size:] for tensor in state))
            state = tuple(tensor[:size] for tensor in state)
        state = step(x, state, w_hh, b_hh)
        outputs.append(state[0])
    ended.append(state)
    return torch.cat(outputs), tuple(torch.cat(tensors) for tensors in zip(*ended[::-1], strict=True))


def _run_backward(step: Step, projected: Tensor, initial: State, sizes: list[int], w_hh: Tensor,
                  b_hh: Tensor | None) -> tuple[Tensor, State]:
    """One direction, newest step first: a sequence's state starts at its own last element."""
    outputs = []
    state = tuple(tensor[:0] for tensor in initial)
    for size, x in zip(reversed(sizes), reversed(projected.split(sizes)), strict=True):
        if size > state[0].shape[0]:  # sequences whose last element is this step start here
            state = tuple(torch.cat([now, start[now.shape[0]:size]]) for now, start in zip(state, initial, strict=True))
        state = step(x, state, w_hh, b_hh)
        outputs.append(state[0])
    return torch.cat(outputs[::-1]), state


class RNN(_Recurrent):
    """Drop-in ``torch.nn.RNN``: ``h' = nonlinearity(W_ih x + b_ih + W_hh h + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def _step(self) -> Step:
        return _rnn_step(torch.tanh if self.nonlinearity == "tanh" else torch.relu)


class GRU(_Recurrent):
    """Drop-in ``torch.nn.GRU`` (gates in torch's order: reset, update, new)."""

    gates = 3
    fold_hidden_bias = False

    def _step(self) -> Step:
        return _gru_step


class LSTM(_Recurrent):
    """Drop-in ``torch.nn.LSTM`` (gates in torch's order: input, forget, cell, output); returns ``(h_n, c_n)``."""

    gates = 4
    states = 2

    def _step(self) -> Step:
        return _lstm_step
