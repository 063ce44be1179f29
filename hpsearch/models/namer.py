"""A language-conditioned character language model: it reads a name so far and the name's language, and gives
the logits of the next character at every step."""

from __future__ import annotations

import torch
from torch import nn

from hpsearch.models.encoder import recurrent


class NameGenerator(nn.Module):
    """``condition="input"``: the language's embedding joins every character's; ``"state"``: it sets the initial
    hidden state of every layer, and the model must carry it from there."""

    def __init__(self, vocab_size: int, num_languages: int, *, condition: str = "input", cell: str = "lstm",
                 embedding_dim: int = 32, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 nonlinearity: str = "tanh", implementation: str = "builtin") -> None:
        super().__init__()
        self.condition, self.cell, self.num_layers, self.hidden_size = condition, cell, num_layers, hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        by_input = condition == "input"
        self.language = nn.Embedding(num_languages, embedding_dim if by_input else num_layers * hidden_size)
        self.rnn = recurrent(embedding_dim * (2 if by_input else 1), cell=cell, implementation=implementation,
                             hidden_size=hidden_size, num_layers=num_layers, bidirectional=False, dropout=dropout,
                             nonlinearity=nonlinearity)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def initial_state(self, languages: torch.Tensor):
        """The state a name starts from: zeros, or the language's (conditioned by state)."""
        if self.condition == "input":
            return None
        hidden = torch.tanh(self.language(languages)).view(len(languages), self.num_layers, self.hidden_size)
        hidden = hidden.transpose(0, 1).contiguous()
        return (hidden, torch.zeros_like(hidden)) if self.cell == "lstm" else hidden

    def forward(self, inputs: torch.Tensor, languages: torch.Tensor, state=None):
        """Logits (batch, time, vocab) and the state after the last step, which a sampler passes back in. With
        no ``state``, the name starts here. Padding follows a name's end, so it changes no step that counts."""
        steps = self.embedding(inputs)
        if self.condition == "input":
            steps = torch.cat([steps, self.language(languages)[:, None].expand(-1, steps.shape[1], -1)], dim=-1)
        outputs, state = self.rnn(steps, self.initial_state(languages) if state is None else state)
        return self.head(self.dropout(outputs)), state
