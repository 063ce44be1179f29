"""Several classifiers as one: their class probabilities averaged with weights, each class then weighted by what
answering it is worth (its gain under the metric served: 1 for accuracy, more for a rare class under balanced
accuracy), so that the highest score is the answer that maximizes the expected metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], gains: torch.Tensor) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError("an ensemble needs one weight per member, and a member")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("log_gains", gains.float().log())

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log of the mixed probabilities times the gains (not normalised: softmax normalises them)."""
        mixed = sum(w * m(tokens, lengths).softmax(-1) for w, m in zip(self.weights, self.members, strict=True))
        return mixed.clamp_min(torch.finfo(mixed.dtype).tiny).log() + self.log_gains
