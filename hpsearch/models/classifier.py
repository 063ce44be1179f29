"""A recurrent sequence classifier: embedding -> packed RNN/GRU/LSTM -> linear head on the final state."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from hpsearch.models.encoder import recurrent


class RecurrentClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, *, cell: str = "lstm", embedding_dim: int = 32,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, nonlinearity: str = "tanh", implementation: str = "builtin") -> None:
        super().__init__()
        self.num_directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.rnn = recurrent(embedding_dim, cell=cell, implementation=implementation, hidden_size=hidden_size,
                             num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                             nonlinearity=nonlinearity)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * self.num_directions, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits from padded ``tokens`` (batch, time) and their true ``lengths`` (on the CPU).

        Packing means no padded position is ever read: the forward state stops at each sequence's last
        character and the backward direction starts there.
        """
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        # h_n is (layers * directions, batch, hidden); the last layer's directions are its final rows.
        final = h_n[-self.num_directions:].transpose(0, 1).reshape(tokens.shape[0], -1)
        return self.head(self.dropout(final))
