"""The recurrent layer stack every task's model is built around: torch.nn's fused layers or the hand-written ones."""

from __future__ import annotations

from torch import nn

from hpsearch.models import cells

# implementation -> cell -> layer class; the hand-written layers take the same arguments and state_dict.
CELLS: dict[str, dict[str, type[nn.Module]]] = {
    "builtin": {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM},
    "handwritten": {"rnn": cells.RNN, "gru": cells.GRU, "lstm": cells.LSTM},
}


def recurrent(input_size: int, *, cell: str, implementation: str, hidden_size: int, num_layers: int,
              bidirectional: bool, dropout: float, nonlinearity: str) -> nn.Module:
    """A batch-first RNN, GRU or LSTM stack."""
    extra = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    # torch applies `dropout` between stacked layers only, and warns when there is just one.
    return CELLS[implementation][cell](input_size, hidden_size, num_layers, batch_first=True,
                                       dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
                                       **extra)
