"""Big-number addition (seeds 002 and 003): pairs of non-negative integers, generated, never downloaded.

Numbers are Python integers, so any number of digits is exact. A pair becomes two digit sequences, least
significant digit first and zero-padded to ``max_digits + 1`` positions (room for the last carry); the target
is the digits of the sum in the same order. Validation and test are fixed sets drawn from ``split_seed``;
training batches are drawn fresh every step and never contain a held-out pair.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from hpsearch.datasets.batching import to_device
from hpsearch.datasets.options import DataOptions, number, whole


@dataclass(frozen=True)
class Options(DataOptions):
    max_digits: int = 20  # the longest number of a training or held-out pair
    steps_per_epoch: int = 200  # an epoch is this many batches, each freshly drawn
    val_size: int = 1000
    test_size: int = 1000
    # Share of pairs drawn as a carry chain (a + b = 10**L: every digit carries). Uniform digits rarely carry
    # more than a few positions in a row, and a model that never saw a long chain gets 999...9 + 1 wrong.
    carry_fraction: float = 0.2

    def problems(self) -> list[str]:
        problems = super().problems()
        for key in ("max_digits", "steps_per_epoch", "val_size", "test_size"):
            value = getattr(self, key)
            if not whole(value) or value < 1:
                problems.append(f"data.{key}: must be a whole number >= 1, got {value!r}")
        if not number(self.carry_fraction) or not 0 <= self.carry_fraction <= 1:
            problems.append(f"data.carry_fraction: must be a fraction between 0 and 1, got {self.carry_fraction!r}")
        if not problems and self.max_digits <= 2 and self.val_size + self.test_size > 10 ** (2 * self.max_digits) // 2:
            problems.append("data: val_size + test_size leave too few pairs of so few digits to train on")
        return problems


@dataclass(frozen=True)
class Sums:
    """Pairs as digits (n, positions, 2) and the digits of their sums (n, positions), lowest digit first."""

    digits: torch.Tensor
    sums: torch.Tensor

    def __len__(self) -> int:
        return len(self.sums)

    def to(self, device: torch.device | str) -> Sums:
        return Sums(to_device(self.digits, device), to_device(self.sums, device))


def to_digits(numbers: Iterable[int], positions: int) -> torch.Tensor:
    """(n, positions) digits of each number, lowest first; every number must have at most ``positions`` digits."""
    text = "".join(f"{n:0{positions}d}"[::-1] for n in numbers)
    array = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, positions) - ord("0")
    return torch.from_numpy(array.astype(np.int64))


def from_digits(digits: torch.Tensor) -> list[int]:
    """The numbers whose digits, lowest first, are the rows of ``digits``."""
    return [int("".join(map(str, row[::-1])) or "0") for row in digits.tolist()]


def tensorise(pairs: Sequence[tuple[int, int]], positions: int) -> Sums:
    digits = torch.stack([to_digits([a for a, _ in pairs], positions), to_digits([b for _, b in pairs], positions)], 2)
    return Sums(digits, to_digits([a + b for a, b in pairs], positions))


def _of_length(rng: random.Random, digits: int) -> int:
    return rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits)


def draw(rng: random.Random, max_digits: int, carry_fraction: float) -> tuple[int, int]:
    """One pair: mostly numbers of uniformly drawn lengths (so short and long ones are equally common), and a
    ``carry_fraction`` of carry chains, a + b = 10**L."""
    if rng.random() < carry_fraction:
        length = rng.randint(1, max_digits)
        a = rng.randrange(1, 10 ** length)
        return a, 10 ** length - a
    return _of_length(rng, rng.randint(1, max_digits)), _of_length(rng, rng.randint(1, max_digits))


def _distinct(rng: random.Random, n: int, make, exclude: frozenset[tuple[int, int]]) -> list[tuple[int, int]]:
    chosen: dict[tuple[int, int], None] = {}
    while len(chosen) < n:
        pair = make(rng)
        if pair not in exclude:
            chosen[pair] = None
    return list(chosen)


@dataclass(frozen=True)
class AdditionData:
    options: Options
    val: Sums
    test: Sums
    longer: Sums  # numbers of exactly twice max_digits digits: does the model generalise in length?
    all_carry: Sums  # a + b = 10**max_digits: the carry runs through every position
    held_out: frozenset[tuple[int, int]]
    fingerprint: str

    @property
    def positions(self) -> int:
        return self.options.max_digits + 1

    def split(self, name: str) -> Sums:
        return getattr(self, name)

    def to(self, device: torch.device | str) -> AdditionData:
        return replace(self, **{name: self.split(name).to(device) for name in ("val", "test", "longer", "all_carry")})

    def batch(self, rng: random.Random, size: int) -> Sums:
        """A fresh training batch with no held-out pair in it."""
        pairs: list[tuple[int, int]] = []
        while len(pairs) < size:
            pair = draw(rng, self.options.max_digits, self.options.carry_fraction)
            if pair not in self.held_out:
                pairs.append(pair)
        return tensorise(pairs, self.positions)


def load(options: Options) -> AdditionData:
    rng = random.Random(options.split_seed)
    digits, positions = options.max_digits, options.max_digits + 1
    val = _distinct(rng, options.val_size, lambda r: draw(r, digits, options.carry_fraction), frozenset())
    test = _distinct(rng, options.test_size, lambda r: draw(r, digits, options.carry_fraction), frozenset(val))
    longer = [(_of_length(rng, 2 * digits), _of_length(rng, 2 * digits)) for _ in range(options.test_size)]
    # A last digit of 0 would make the lowest position 0 + 0, with no carry to start the chain.
    carried = [_of_length(rng, digits) // 10 * 10 + rng.randint(1, 9) for _ in range(options.test_size)]
    all_carry = [(a, 10 ** digits - a) for a in carried]
    fingerprint = hashlib.sha256(repr((val, test, longer, all_carry)).encode()).hexdigest()
    return AdditionData(options, tensorise(val, positions), tensorise(test, positions),
                        tensorise(longer, 2 * digits + 1), tensorise(all_carry, positions),
                        frozenset(val) | frozenset(test), fingerprint)
