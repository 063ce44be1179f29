"""A digit-by-digit adder: two numbers read in step, least-significant digit first, one sum digit per step.

Addition carries from the low digits to the high ones, so a left-to-right recurrent pass over the digits, low
digit first, has seen everything the digit at each position depends on.
"""

from __future__ import annotations

import torch
from torch import nn

from hpsearch.models.encoder import recurrent

DIGITS = 10


class DigitAdder(nn.Module):
    def __init__(self, *, cell: str = "gru", embedding_dim: int = 16, hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, nonlinearity: str = "tanh",
                 implementation: str = "builtin") -> None:
        super().__init__()
        self.embedding = nn.Embedding(DIGITS, embedding_dim)  # shared by both numbers
        # The two digits of a position are concatenated, so the order of the operands is visible to the model.
        self.rnn = recurrent(2 * embedding_dim, cell=cell, implementation=implementation, hidden_size=hidden_size,
                             num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                             nonlinearity=nonlinearity)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), DIGITS)

    def forward(self, digits: torch.Tensor) -> torch.Tensor:
        """Logits (batch, positions, 10) of the sum's digits from ``digits`` (batch, positions, 2)."""
        steps = self.embedding(digits).flatten(2)
        outputs, _ = self.rnn(steps)
        return self.head(self.dropout(outputs))
