"""The base of every task's data settings, the ``[data]`` table of a study spec. Kept free of torch so that a
spec validates quickly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class DataOptions:
    """A task subclasses this with its own fields (all with defaults) and extends ``problems``."""

    split_seed: int = 0  # which held-out data; the search's own seeds are the sampler's

    def problems(self) -> list[str]:
        """What is wrong with these settings, one ``data.<key>: ...`` line each."""
        if not whole(self.split_seed):
            return [f"data.split_seed: must be a whole number, got {self.split_seed!r}"]
        return []


@dataclass(frozen=True)
class Fractions(DataOptions):
    """Validation and test shares of a dataset that is split once, by the task's loader."""

    val_fraction: float = 0.1
    test_fraction: float = 0.1

    def problems(self) -> list[str]:
        problems = super().problems()
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not number(value) or not 0 < value < 1:
                problems.append(f"data.{key}: must be a fraction between 0 and 1, got {value!r}")
        if not problems and self.val_fraction + self.test_fraction >= 1:
            problems.append("data: val_fraction + test_fraction must leave something to train on")
        return problems
