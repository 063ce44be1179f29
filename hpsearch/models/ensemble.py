"""Several classifiers as one: their class probabilities averaged with weights, then divided by the class prior
raised to ``tau`` (a post-hoc logit adjustment, as in Menon et al. 2021, "Long-tail learning via logit
adjustment"): tau 0 keeps the averaged probabilities, tau 1 ranks classes as if every class were equally common.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Ensemble(nn.Module):
    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], log_prior: torch.Tensor,
                 tau: float) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError("an ensemble needs one weight per member, and a member")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("shift", tau * log_prior.float())

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log of the adjusted probabilities (not normalised: softmax normalises them)."""
        mixed = sum(w * m(tokens, lengths).softmax(-1) for w, m in zip(self.weights, self.members, strict=True))
        return mixed.clamp_min(torch.finfo(mixed.dtype).tiny).log() - self.shift
