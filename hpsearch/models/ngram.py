"""A fitted linear model over TF-IDF n-grams as a torch module, servable like a trial's model: the study's
baseline (a logistic regression) and the naive Bayes model served beside it, whose class log-probabilities are
also linear in the features (a log prior plus the features times each class's log n-gram probabilities).

scikit-learn fits them (training/baseline.py); this module holds what a fit learnt (the n-gram vocabulary, the
idf weights, the coefficients) as tensors, so it is saved and loaded like any checkpoint (weights only, no
pickled code), runs on the device the other models run on, and takes the same padded batches. Its forward
pass is TfidfVectorizer's transform (sublinear tf, idf, L2 norm) followed by the linear decision function.
"""

from __future__ import annotations

import torch
from torch import nn

EDGE_DIGIT = 1  # the start and end mark; a token id t is the digit t + 2, and 0 marks a place outside a sequence


def ngram_keys(digits: torch.Tensor, n: int, base: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The key of every n-gram that lies wholly inside its row of ``digits`` (rows, places), and its row.

    A key is the n-gram's digits read as a number in ``base``; no digit is 0, so n-grams of different lengths
    never share a key."""
    windows = digits.unfold(1, n, 1)
    powers = base ** torch.arange(n, device=digits.device)
    keys = (windows * powers).sum(-1)
    rows, starts = (windows > 0).all(-1).nonzero(as_tuple=True)
    return keys[rows, starts], rows


def marked_digits(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(rows, places + 2): each row's token digits between start and end marks, zeros after."""
    rows, width = tokens.shape
    lengths = lengths.to(tokens.device)
    inside = torch.arange(width, device=tokens.device) < lengths[:, None]
    digits = torch.zeros(rows, width + 2, dtype=torch.long, device=tokens.device)
    digits[:, 0] = EDGE_DIGIT
    digits[:, 1:-1] = torch.where(inside, tokens.long() + 2, 0)
    digits[torch.arange(rows, device=tokens.device), lengths + 1] = EDGE_DIGIT
    return digits


class NgramLinear(nn.Module):
    """Class logits of token sequences from TF-IDF weighted n-grams (lengths ``low``..``high``)."""

    def __init__(self, vocab_size: int, num_classes: int, features: int, low: int, high: int) -> None:
        super().__init__()
        self.low, self.high, self.base = low, high, vocab_size + 2
        if self.base ** (high + 1) >= 2 ** 63:
            raise ValueError(f"{high}-grams of a {vocab_size}-token vocabulary do not fit 64-bit keys")
        self.register_buffer("keys", torch.zeros(features, dtype=torch.long))  # sorted: found by binary search
        self.register_buffer("idf", torch.zeros(features))
        self.register_buffer("weight", torch.zeros(features, num_classes))
        self.register_buffer("bias", torch.zeros(num_classes))

    @property
    def options(self) -> dict[str, int]:
        """The constructor's arguments: with the state dict, all a checkpoint needs."""
        return {"vocab_size": self.base - 2, "num_classes": self.bias.numel(), "features": self.keys.numel(),
                "low": self.low, "high": self.high}

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        digits = marked_digits(tokens, lengths)
        found = [ngram_keys(digits, n, self.base) for n in range(self.low, self.high + 1)]
        keys, rows = torch.cat([k for k, _ in found]), torch.cat([r for _, r in found])
        column = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        known = self.keys[column] == keys
        cells, counts = torch.unique(rows[known] * len(self.keys) + column[known], return_counts=True)
        rows, column = cells // len(self.keys), cells % len(self.keys)
        value = (1 + counts.float().log()) * self.idf[column]
        norm = torch.zeros(len(tokens), device=value.device).index_add_(0, rows, value.square()).sqrt()
        value = value / norm[rows]  # a row with a feature has a norm above 0
        logits = self.bias.expand(len(tokens), -1).clone()
        return logits.index_add_(0, rows, value[:, None] * self.weight[column])
