"""A recurrent sequence classifier: embedding -> packed RNN/GRU/LSTM -> pooled encoding -> linear or MLP head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from hpsearch.datasets.batching import to_device, unpadded
from hpsearch.models.encoder import recurrent

POOLINGS = ("last", "mean", "max")
KEEPS = ("start", "end")


class RecurrentClassifier(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, *, cell: str = "lstm", embedding_dim: int = 32,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, nonlinearity: str = "tanh", implementation: str = "builtin",
                 pooling: str = "last", head_size: int = 0, max_len: int = 0, keep: str = "start",
                 single_logit: bool = False, token_dropout: float = 0.0) -> None:
        """``pooling``: the final state ("last"), or the mean or elementwise max of the outputs at every
        position. ``head_size`` > 0 puts a hidden layer with ReLU before the output (seed 001's head).
        ``max_len`` > 0 reads at most that many tokens of a sequence, its first or last (``keep``).
        ``single_logit``: two classes scored by one logit z (sigmoid and binary cross-entropy) rather than one
        logit per class (softmax). ``token_dropout``: in training, each token is blanked (read as padding, whose
        embedding is zero) with this probability, so the model cannot lean on any one character or word."""
        super().__init__()
        if pooling not in POOLINGS or keep not in KEEPS:
            raise ValueError(f"pooling must be one of {POOLINGS} and keep one of {KEEPS}, got {pooling!r}, {keep!r}")
        if single_logit and num_classes != 2:
            raise ValueError("a single logit scores two classes only")
        self.num_directions = 2 if bidirectional else 1
        self.pooling, self.max_len, self.keep = pooling, max_len, keep
        self.single_logit, self.token_dropout = single_logit, token_dropout
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.rnn = recurrent(embedding_dim, cell=cell, implementation=implementation, hidden_size=hidden_size,
                             num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                             nonlinearity=nonlinearity)
        self.dropout = nn.Dropout(dropout)
        width, outputs = hidden_size * self.num_directions, 1 if single_logit else num_classes
        self.head = (nn.Sequential(nn.Linear(width, head_size), nn.ReLU(), nn.Dropout(dropout),
                                   nn.Linear(head_size, outputs))
                     if head_size else nn.Linear(width, outputs))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits from padded ``tokens`` (batch, time) and their true ``lengths`` (on the CPU).

        Packing means no padded position is ever read: the forward state stops at each sequence's last
        token and the backward direction starts there. A batch whose sequences all fill its width needs none.
        """
        if self.max_len:
            tokens, lengths = self._truncate(tokens, lengths)
        if self.training and self.token_dropout:
            tokens = tokens.masked_fill(torch.rand(tokens.shape, device=tokens.device) < self.token_dropout, 0)
        embedded = self.embedding(tokens)
        if unpadded(tokens, lengths):  # no padding to skip: the layer runs on the batch as it is
            outputs, state = self.rnn(embedded)
        else:
            # Training batches come longest first (shuffled_batches): packing them as they are saves a sort and
            # a copy of its order to the device per batch.
            longest_first = bool((lengths[:-1] >= lengths[1:]).all())
            outputs, state = self.rnn(pack_padded_sequence(embedded, lengths, batch_first=True,
                                                           enforce_sorted=longest_first))
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
            # h_n is (layers * directions, batch, hidden); the last layer's directions are its final rows.
            pooled = h_n[-self.num_directions:].transpose(0, 1).reshape(tokens.shape[0], -1)
        elif not isinstance(outputs, PackedSequence):
            pooled = outputs.amax(1) if self.pooling == "max" else outputs.mean(1)
        else:
            padding = float("-inf") if self.pooling == "max" else 0.0
            padded, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=padding)
            pooled = (padded.amax(1) if self.pooling == "max"
                      else padded.sum(1) / to_device(lengths, padded.device).to(padded.dtype)[:, None])
        logits = self.head(self.dropout(pooled))
        # Cross-entropy over the pair (0, z) is exactly binary cross-entropy on z, and its softmax is
        # (1 - sigmoid(z), sigmoid(z)): training, evaluation and prediction need no second code path.
        return torch.cat([torch.zeros_like(logits), logits], 1) if self.single_logit else logits

    def _truncate(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = lengths.clamp(max=self.max_len)
        if self.keep == "start":
            return tokens[:, : self.max_len], kept
        if unpadded(tokens, lengths):  # and no copy to the device, which a CUDA graph cannot replay
            return tokens[:, tokens.shape[1] - int(kept[0]):], kept
        # The last `kept` tokens of each row, moved to its front: row i reads from lengths[i] - kept[i].
        offsets = torch.arange(int(kept.max()))
        positions = ((lengths - kept)[:, None] + offsets).clamp(max=tokens.shape[1] - 1)
        window = tokens.gather(1, to_device(positions, tokens.device))
        return window.masked_fill(to_device(offsets >= kept[:, None], tokens.device), 0), kept
